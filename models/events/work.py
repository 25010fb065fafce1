"""Events of dispatch and field work: offers, orders, proofs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.events import Event


class RetractReason(StrEnum):
    """Why an open (or held) work order was taken back from a worker; the renderer words each one."""

    CASE_ENDED = "case_ended"  # the case was closed, cancelled or otherwise left the open states
    TAKEN = "taken"  # another worker accepted first
    OFF_DUTY = "off_duty"  # this worker went off duty
    DEACTIVATED = "deactivated"  # this worker was deactivated
    REASSIGNED = "reassigned"  # a supervisor gave it to someone else
    TAKEN_OVER = "taken_over"  # a supervisor took the case over
    SHELVED = "shelved"  # a supervisor put the case on hold


@dataclass(frozen=True, kw_only=True)
class OfferRetracted(Event):
    """Offer `offer_id` of case `case_number` left worker `worker_id` (its status already changed)."""

    offer_id: int
    case_id: int
    case_number: str
    worker_id: int
    reason: RetractReason


@dataclass(frozen=True, kw_only=True)
class OrderWithdrawn(Event):
    """A work order worker `worker_id` had accepted was taken back from them (`reason`)."""

    case_id: int
    case_number: str
    worker_id: int
    reason: RetractReason
