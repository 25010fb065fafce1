"""Events of supervision: verification, closure, extensions, shelving, the escalation ladder, forum topics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.events import Event

# -- verification and closure ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class VerificationRequested(Event):
    """Supervisor `supervisor_id` is to judge the current round of case `case_id` (request row `request_id`).

    `from_queue`: the supervisor opened it from their /verify queue rather than being sent it.
    """

    case_id: int
    case_number: str
    case_version: int
    supervisor_id: int
    request_id: int
    from_queue: bool = False


@dataclass(frozen=True, kw_only=True)
class ClosureApproved(Event):
    """Supervisor `supervisor_id` approved the proofs; the case is closed. `card_ids`: the open
    verification requests of the case, now decided."""

    case_id: int
    case_number: str
    supervisor_id: int
    card_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class ClosureRejected(Event):
    """Supervisor `supervisor_id` sent the case back for rework with `reason`; its tasks went back to their workers."""

    case_id: int
    case_number: str
    supervisor_id: int
    reason: str
    card_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class ClosedBySource(Event):
    """The camera or sensor that opened the case reported the problem gone while it awaited verification."""

    case_id: int
    case_number: str
    card_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class SourceReportsGone(Event):
    """The source reported the problem gone while a worker is on the case; the case stays open."""

    case_id: int
    case_number: str


# -- extensions and shelving ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExtensionRequested(Event):
    """Worker `worker_id` asks for `minutes` more working time on the case, for `reason`."""

    case_id: int
    case_number: str
    worker_id: int
    minutes: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class ExtensionGranted(Event):
    """The handling deadline moved to `new_due_at`; `requester_id` (the asking worker, or the handler) is told."""

    case_id: int
    case_number: str
    supervisor_id: int
    requester_id: int | None
    minutes: int
    new_due_at: datetime


@dataclass(frozen=True, kw_only=True)
class ExtensionRefused(Event):
    """The pending request of `requester_id` was refused for `reason`; the deadline stays `due_at`."""

    case_id: int
    case_number: str
    supervisor_id: int
    requester_id: int
    reason: str
    due_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class CaseShelved(Event):
    case_id: int
    case_number: str
    supervisor_id: int | None  # None: an API key shelved it
    reason: str
    review_at: datetime


@dataclass(frozen=True, kw_only=True)
class CaseUnshelved(Event):
    case_id: int
    case_number: str
    supervisor_id: int | None  # None: an API key took it off the shelf


# -- the escalation ladder ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CaseEscalated(Event):
    """Step `step_code` (level `level`, counted from `after`: accept_due | handle_due) of the ladder fired,
    or repeated for the `repeat`-th time. `worker_ids` are reminded; `supervisor_ids` get the ping card
    for escalation step row `step_id`."""

    case_id: int
    case_number: str
    step_id: int
    step_code: str
    after: str
    level: str
    repeat: int = 0
    final: bool = False  # the ladder's last step: nobody above is left to tell
    worker_ids: tuple[int, ...] = ()
    supervisor_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GroupPing:
    """The escalation steps (case id, step row id) one supervisors' group (and forum topic) is told about."""

    chat_id: int
    message_thread_id: int | None
    items: tuple[tuple[int, int], ...]


@dataclass(frozen=True, kw_only=True)
class GroupsPinged(Event):
    """In one sweep batch these groups were pinged; a channel may batch each group's items into few messages."""

    groups: tuple[GroupPing, ...]


@dataclass(frozen=True, kw_only=True)
class ShelfReviewDue(Event):
    """Shelved case `case_id` reached its review date (shelving row `shelving_id`)."""

    case_id: int
    case_number: str
    shelving_id: int
    supervisor_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class EscalationAcknowledged(Event):
    """Supervisor `supervisor_id` acknowledged the pings of the case up to step row `step_id`: no more repeats."""

    case_id: int
    case_number: str
    step_id: int
    supervisor_id: int


@dataclass(frozen=True, kw_only=True)
class CaseReassigned(Event):
    """A supervisor offered the case's tasks `task_ids` to worker `worker_id` alone."""

    case_id: int
    case_number: str
    supervisor_id: int
    worker_id: int
    task_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class CaseTakenOver(Event):
    """Supervisor `supervisor_id` holds tasks `task_ids` of the case now, as a worker would."""

    case_id: int
    case_number: str
    supervisor_id: int
    task_ids: tuple[int, ...]


# -- forum topics ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TopicBound(Event):
    """Pings to group `chat_id` about `area_code` now go to forum topic `message_thread_id`.
    `claimed_area_code`: the group just became the supervisors' group of this area."""

    supervisor_id: int
    chat_id: int
    message_thread_id: int
    area_code: str
    claimed_area_code: str | None = None


@dataclass(frozen=True, kw_only=True)
class TopicUnbound(Event):
    """Pings about `area_codes` no longer go to this topic (empty: none did)."""

    supervisor_id: int
    chat_id: int
    message_thread_id: int
    area_codes: tuple[str, ...]
