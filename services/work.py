"""Handling (处置): a worker accepts, returns or completes work orders; on/off duty.

The use cases live by responsibility: services/offers.py (accept, return), services/duty.py,
services/orders.py (the /tasks list), services/proofs.py (completion with photos and location),
services/work_rules.py (the pure location rules) and services/work_common.py (refusals, who may act).
This module gathers their public names, so `from services import work; work.accept_offer(...)` keeps
working for the callers outside field work.
"""

from __future__ import annotations

from services.duty import DutyResult, set_duty
from services.offers import AcceptOutcome, AcceptResult, ReturnResult, accept_offer, return_order
from services.orders import OrderLine, OrdersView, open_orders
from services.proofs import (
    CompletionView,
    LocationOutcome,
    LocationResult,
    add_proof_photo,
    clear_proof_photos,
    completion_view,
    start_completion,
    submit_flagged,
    submit_location,
    track_live_location,
)
from services.work_common import (
    MAX_REASON,
    LocationMissing,
    LocationRefused,
    NotAWorker,
    NotYourOrder,
    OfferUnavailable,
    PhotosMissing,
    ProofPhotoRefused,
    ReasonRequired,
    ReturnNotAllowed,
    SamePicture,
    TaskNotOpen,
    TooManyPhotos,
    WorkError,
    WorkerInactive,
    abandon_drafts,
    note_event,
)
from services.work_rules import (
    FUTURE_TOLERANCE_S,
    RECENT_PROOFS,
    REFUSING,
    LocationFix,
    LocationJudgement,
    LocationProblem,
    judge_location,
)

__all__ = [
    "FUTURE_TOLERANCE_S",
    "MAX_REASON",
    "RECENT_PROOFS",
    "REFUSING",
    "AcceptOutcome",
    "AcceptResult",
    "CompletionView",
    "DutyResult",
    "LocationFix",
    "LocationJudgement",
    "LocationMissing",
    "LocationOutcome",
    "LocationProblem",
    "LocationRefused",
    "LocationResult",
    "NotAWorker",
    "NotYourOrder",
    "OfferUnavailable",
    "OrderLine",
    "OrdersView",
    "PhotosMissing",
    "ProofPhotoRefused",
    "ReasonRequired",
    "ReturnNotAllowed",
    "ReturnResult",
    "SamePicture",
    "TaskNotOpen",
    "TooManyPhotos",
    "WorkError",
    "WorkerInactive",
    "abandon_drafts",
    "accept_offer",
    "add_proof_photo",
    "clear_proof_photos",
    "completion_view",
    "judge_location",
    "note_event",
    "open_orders",
    "return_order",
    "set_duty",
    "start_completion",
    "submit_flagged",
    "submit_location",
    "track_live_location",
]
