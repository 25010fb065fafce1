"""Events of the patrol side (巡查上报): a grid worker's own report became a case."""

from __future__ import annotations

from dataclasses import dataclass

from models.events import Event
from models.events.resident import ReplyTo


@dataclass(frozen=True, kw_only=True)
class PatrolReportFiled(Event):
    """Worker `worker_id`'s patrol draft became case `number`; kept by them, or handed to dispatch.

    When kept, `PatrolOrderAssigned` (models/events/work.py) follows from dispatch with the order itself.
    """

    case_id: int
    number: str
    worker_id: int
    handed_to_dispatch: bool
    reply_to: ReplyTo
