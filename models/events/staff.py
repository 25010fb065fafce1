"""Events of staff housekeeping: the daily digest, spot checks, command menus, onboarding and deactivation.

Also the plain values those events carry (the digest's series and overdue list, the verdicts on a
spot-check answer), so a renderer needs nothing from services/ to word them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from models.events import Event
from models.lifecycle import Role
from models.supervision import SpotCheckStatus

# -- the daily digest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayPoint:
    day: date  # city-local
    open_at_end: int
    closed: int
    closed_on_time: int

    @property
    def on_time_rate(self) -> float | None:
        return self.closed_on_time / self.closed if self.closed else None


@dataclass(frozen=True)
class DigestSeries:
    area_code: str
    points: tuple[DayPoint, ...]

    @property
    def closed(self) -> int:
        return sum(p.closed for p in self.points)

    @property
    def on_time_rate(self) -> float | None:
        closed = self.closed
        return sum(p.closed_on_time for p in self.points) / closed if closed else None


@dataclass(frozen=True)
class OverdueCase:
    case_id: int
    number: str
    category_code: str
    grid_code: str | None
    deadline: str  # "accept" or "handle": the deadline it is most late on
    due_at: datetime
    late: timedelta
    holder_names: tuple[str, ...]
    held: bool  # True: they accepted it; False: it is only on offer to them


@dataclass(frozen=True)
class Overdue:
    total: int  # overdue open cases in the subtree
    cases: tuple[OverdueCase, ...]  # the `limit` most late, most late first


@dataclass(frozen=True, kw_only=True)
class DigestReady(Event):
    """Today's digest of supervisor `person_id`'s area: the series to chart and the most overdue cases."""

    person_id: int
    day: date  # city-local
    series: DigestSeries
    overdue: Overdue


# -- spot checks --------------------------------------------------------------------------------------


class AnswerOutcome(StrEnum):
    NO_CHECK = "no_check"  # the worker has no open spot check
    REFUSED = "refused"  # this photo or location does not count; try again before the deadline
    WAITING_FOR_LOCATION = "waiting_for_location"  # the photo counts; the live location is missing
    WAITING_FOR_PHOTO = "waiting_for_photo"  # the location counts; the photo is missing
    PASSED = "passed"
    LATE = "late"  # the deadline had passed: the check is finished (FAILED or SILENT) and escalated


class AnswerProblem(StrEnum):
    FORWARDED = "forwarded"
    AS_FILE = "as_file"  # a picture sent as a document: could be any old file
    STALE = "stale"  # not sent just now
    SAME_PICTURE = "same_picture"  # repeats an earlier spot-check or proof photo of the worker
    NOT_AN_IMAGE = "not_an_image"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    TRUNCATED = "truncated"
    VENUE = "venue"
    VIA_BOT = "via_bot"
    LOW_ACCURACY = "low_accuracy"
    NOT_LIVE = "not_live"
    OUTSIDE_GRID = "outside_grid"


class AnswerKind(StrEnum):
    PHOTO = "photo"
    LOCATION = "location"
    LIVE_UPDATE = "live_update"  # a move of a live location already shared: said only when it made it count


@dataclass(frozen=True, kw_only=True)
class SpotCheckRequested(Event):
    """Worker `worker_id` is asked to prove, by `due_at`, that they are inside grid `grid_code`."""

    check_id: int
    grid_code: str
    worker_id: int
    due_at: datetime
    answer_minutes: int


@dataclass(frozen=True, kw_only=True)
class SpotCheckAnswerJudged(Event):
    """An answer to an open check was judged and the check is still open: refused, or a part is missing."""

    check_id: int
    grid_code: str
    worker_id: int
    due_at: datetime
    kind: AnswerKind
    outcome: AnswerOutcome  # REFUSED, WAITING_FOR_LOCATION or WAITING_FOR_PHOTO
    problems: tuple[AnswerProblem, ...] = ()
    newly_accepted: bool = False  # this answer made a part count that did not before
    age_s: float = 0.0  # of a refused, stale answer
    accuracy_m: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SpotCheckPassed(Event):
    check_id: int
    grid_code: str
    worker_id: int
    due_at: datetime


@dataclass(frozen=True, kw_only=True)
class SpotCheckFailed(Event):
    """A check ended without passing (`status` FAILED, SILENT or NOBODY) and goes to the grid's supervisors."""

    check_id: int
    grid_code: str
    worker_id: int | None  # None: nobody of the grid was on duty
    status: SpotCheckStatus
    requested_at: datetime
    due_at: datetime
    reasons: tuple[str, ...]  # codes: `no_answer`, `photo:<problem>`, `no_location` ... (services.spot_checks)


# -- staff: menus, onboarding, deactivation ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StaffMenuChanged(Event):
    """Staff member `person_id` (reachable in Telegram) should see `commands` in their chat's menu."""

    person_id: int
    commands: tuple[str, ...]  # command names, in menu order, without the slash


@dataclass(frozen=True, kw_only=True)
class InvitationRedeemed(Event):
    """Person `person_id` took invitation `invitation_id`: they now hold `role` in `area_code`."""

    invitation_id: int
    person_id: int
    role: Role
    area_code: str
    department_code: str | None
    display_name: str = ""  # as the person's messenger account shows it now


@dataclass(frozen=True, kw_only=True)
class WorkerDeactivated(Event):
    """Worker `worker_id` was deactivated by `by_name`; their open work went back to dispatch."""

    worker_id: int
    by_name: str
    returned: int  # held orders sent back to dispatch
    withdrawn: int  # open offers taken back
