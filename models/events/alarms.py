"""Events of life-safety alarms: welfare checks of listed elders, their outcomes, gaps in the duty roster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.events import Event


@dataclass(frozen=True, kw_only=True)
class CoverageGapFound(Event):
    """Nobody on area `area_code`'s duty roster covers `starts_at` (None: not in the past week) to `ends_at`."""

    gap_id: int
    area_code: str
    starts_at: datetime | None
    ends_at: datetime
    uncovered_now: bool
    open_ended: bool  # nobody is on call until the end of the look-ahead (`ends_at` is only where looking stopped)
    supervisor_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class WelfareOutcomeRecorded(Event):
    """Worker `worker_id` recorded `outcome` on site for welfare check `check_id` (case `case_id`).

    `notice_ids`: the FamilyNotice rows of contacts who chose to be told (a channel tells those with a chat).
    """

    check_id: int
    case_id: int
    worker_id: int
    outcome: str
    distance_m: float
    notice_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class WelfareEscalated(Event):
    """Welfare check of case `case_id` needs the street's supervisors and the 居委会 now.

    `reason`: "no_answer" (the worker recorded it) or the code of the ladder step that fired.
    """

    case_id: int
    check_id: int
    reason: str
    supervisor_ids: tuple[int, ...]
    contact_ids: tuple[int, ...]  # AreaContact rows (the neighbourhood committee) with a chat
