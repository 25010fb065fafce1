"""Events of field work beside the order: progress notes and off-duty handovers."""

from __future__ import annotations

from dataclasses import dataclass

from models.events import Event


@dataclass(frozen=True, kw_only=True)
class ProgressNoted(Event):
    """Worker `worker_id` posted progress note `note_id` on task `task_id` of case `case_id` (`kind`)."""

    note_id: int
    case_id: int
    task_id: int
    worker_id: int
    kind: str  # a ProgressKind value


@dataclass(frozen=True, kw_only=True)
class HeldOrdersReleased(Event):
    """Orders worker `worker_id` held went back to dispatch because they went off duty.

    `handed_back`: the worker chose so when going off duty; else their grace period ran out
    (`grace_minutes`). `case_numbers` are the cases whose tasks were released.
    """

    worker_id: int
    case_ids: tuple[int, ...]
    case_numbers: tuple[str, ...]
    handed_back: bool
    grace_minutes: int = 0
