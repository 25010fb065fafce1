"""Queueing WeCom messages: rows written in the caller's transaction, sent by wecom/sender.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlmodel import Session

from models.tables import NotificationStatus, Person
from models.wecom import WecomMessage
from services.notify import current_priority


_collector: ContextVar[list[WecomMessage] | None] = ContextVar("onegrid_wecom_collected", default=None)


@contextmanager
def collected() -> Iterator[list[WecomMessage]]:
    """The rows `queue` and `queue_to` add inside this block (wecom/drill.py labels them)."""
    rows: list[WecomMessage] = []
    token = _collector.set(rows)
    try:
        yield rows
    finally:
        _collector.reset(token)


def uses_wecom(person: Person | None) -> bool:
    return person is not None and person.channel == "wecom" and bool(person.wecom_userid)


def queue(session: Session, person: Person, message: dict[str, Any], *, now: datetime, case_id: int | None = None,
          priority: int | None = None) -> WecomMessage:
    """Queue `message` (a wecom.formats builder's result) to `person`'s WeCom account."""
    return queue_to(session, person.wecom_userid, message, now=now, person_id=person.id, case_id=case_id,
                    priority=priority)


def queue_to(session: Session, touser: str, message: dict[str, Any], *, now: datetime, person_id: int | None = None,
             case_id: int | None = None, priority: int | None = None) -> WecomMessage:
    """Queue `message` to a WeCom member by userid (also one OneGrid does not know yet)."""
    row = WecomMessage(touser=touser, person_id=person_id, case_id=case_id, payload=message,
                       status=NotificationStatus.PENDING,
                       priority=int(priority) if priority is not None else current_priority(),
                       next_attempt_at=now, created_at=now)
    session.add(row)
    rows = _collector.get()
    if rows is not None:
        rows.append(row)
    return row
