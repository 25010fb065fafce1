"""Events of dispatch and field work: offers, orders, duty, proofs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.events import Event
from models.work import EscalationReason


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


# -- dispatch ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OfferMade(Event):
    """Task `task_id` of case `case_id` was offered to worker `worker_id` (offer `offer_id`, status OPEN)."""

    offer_id: int
    case_id: int
    task_id: int
    worker_id: int


@dataclass(frozen=True, kw_only=True)
class PatrolOrderAssigned(Event):
    """A worker's own patrol report became their order at once (task `task_id` is ACCEPTED by `worker_id`)."""

    case_id: int
    task_id: int
    worker_id: int


@dataclass(frozen=True, kw_only=True)
class DispatchEscalated(Event):
    """Nobody could be found for case `case_id` (`reason`); the supervisors `supervisor_ids` are to be told.

    `escalation_id` is the Escalation row recording it; the renderer also tells the area's supervisor group.
    """

    escalation_id: int
    case_id: int
    task_id: int | None
    reason: EscalationReason
    supervisor_ids: tuple[int, ...]


# -- answering an offer ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OrderAccepted(Event):
    """Worker `worker_id` accepted offer `offer_id`: task `task_id` of case `case_id` is theirs.

    `actor_message_id` is the worker's own message they acted on in their channel (opaque here), if known.
    """

    offer_id: int
    case_id: int
    task_id: int
    worker_id: int
    actor_message_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class OrderReturned(Event):
    """Worker `worker_id` handed task `task_id` back (an open offer declined, or a held order returned: 退单)."""

    case_id: int
    task_id: int
    offer_id: int | None
    worker_id: int
    reason: str  # the worker's own words
    actor_message_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class DutyChanged(Event):
    """Worker `worker_id` went on or off duty; going off, `withdrawn` open offers were passed on to others."""

    worker_id: int
    on_duty: bool
    withdrawn: int = 0
    kept: int = 0  # going off: held orders kept for `grace_minutes` (services/handover.py)
    handed_back: int = 0  # going off: held orders handed back to dispatch now
    grace_minutes: int = 0


# -- completing with proof ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CompletionStarted(Event):
    """Holder `worker_id` opened (or resumed) proof `completion_id` of task `task_id`; `photos` are kept so far."""

    completion_id: int
    case_id: int
    task_id: int
    worker_id: int
    photos: int
    max_photos: int


@dataclass(frozen=True, kw_only=True)
class ProofPhotoAdded(Event):
    """A proof photo was accepted into draft `completion_id`; it now has `photos` of at most `max_photos`."""

    completion_id: int
    case_id: int
    worker_id: int
    photos: int
    max_photos: int


@dataclass(frozen=True, kw_only=True)
class ProofPhotosCleared(Event):
    """The worker dropped the photos of draft `completion_id` to take them again."""

    completion_id: int
    case_id: int
    worker_id: int
    max_photos: int


@dataclass(frozen=True, kw_only=True)
class ProofLocationHeld(Event):
    """A location proof was outside the radius or too vague: kept on the draft, awaiting the worker's decision
    (send it again, or submit flagged). `problems` are LocationProblem values."""

    completion_id: int
    case_id: int
    worker_id: int
    problems: tuple[str, ...]
    distance_m: float
    allowed_m: float
    accuracy_m: float


@dataclass(frozen=True, kw_only=True)
class ProofSubmitted(Event):
    """Worker `worker_id` submitted proof `completion_id` of task `task_id`.

    `flagged`: submitted through "submit anyway" despite the location; `waiting_for`: department codes of a
    joint case still working (empty when the case now awaits verification).
    """

    completion_id: int
    case_id: int
    task_id: int
    worker_id: int
    distance_m: float
    live: bool
    flagged: bool
    waiting_for: tuple[str, ...] = ()
