"""Writing notifications: the only way anything reaches a chat.

Callers add rows inside their own transaction, so a message exists exactly when the change
that caused it was committed; bot/delivery.py sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from models.tables import Notification, NotificationStatus, Person, Priority
from services import rows
from services.db import transaction

if TYPE_CHECKING:  # the context holds the event bus, which queues through this module
    from services.context import ServiceContext


# The urgency of rows queued now, set by the event bus from the wiring's priority table.
_priority: ContextVar[int] = ContextVar("notification_priority", default=int(Priority.REPLY))


# Rows queued now are also appended here while a caller collects them (`collected`: the drill label).
_collector: ContextVar[list[Notification] | None] = ContextVar("notification_collector", default=None)


@contextmanager
def collected() -> Iterator[list[Notification]]:
    """The rows `enqueue` adds to a session inside this block (those it does not save are left out)."""
    rows: list[Notification] = []
    token = _collector.set(rows)
    try:
        yield rows
    finally:
        _collector.reset(token)


@contextmanager
def urgency(priority: int) -> Iterator[None]:
    """Rows queued inside this block without an explicit priority get `priority`."""
    token = _priority.set(int(priority))
    try:
        yield
    finally:
        _priority.reset(token)


def enqueue(
    session: Session,
    *,
    chat_id: int | None,
    method: str,
    payload: dict[str, Any],
    now: datetime,
    person_id: int | None = None,
    case_id: int | None = None,
    priority: int | None = None,
) -> Notification:
    """Queue one Bot API call (e.g. sendMessage with `{"text": ...}`) to `chat_id` in `session`.

    `priority` (models.tables.Priority) defaults to the urgency of the event being rendered, else REPLY.
    A person who uses another channel (`Person.channel`, e.g. WeCom) gets no Telegram rows: the row is
    returned unsaved (id None), and that channel's renderers queue the message instead.
    """
    row = rows.new(
        Notification,
        chat_id=chat_id,
        method=method,
        payload=payload,
        person_id=person_id,
        case_id=case_id,
        status=NotificationStatus.PENDING,
        priority=int(priority) if priority is not None else _priority.get(),
        next_attempt_at=now,
        created_at=now,
    )
    if chat_id is None or person_id is not None and not uses_telegram(session, person_id):
        return row  # no Telegram chat (a WeCom-only person), or the person uses another channel
    session.add(row)
    collecting = _collector.get()
    if collecting is not None:
        collecting.append(row)
    return row


def uses_telegram(session: Session, person_id: int) -> bool:
    """Whether this person's notifications go to Telegram (the default channel)."""
    person = session.get(Person, person_id)
    return person is None or person.channel == "telegram"


def enqueue_text(session: Session, *, chat_id: int, text: str, now: datetime, **kw: Any) -> Notification:
    reply_markup = kw.pop("reply_markup", None)
    payload: dict[str, Any] = {"text": text, "parse_mode": "HTML"}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    return enqueue(session, chat_id=chat_id, method="sendMessage", payload=payload, now=now, **kw)


def send_reply(
    ctx: ServiceContext,
    *,
    chat_id: int,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    person_id: int | None = None,
) -> None:
    """Queue a reply to the person acting now, in its own transaction, and wake the sender."""
    with transaction(ctx.sessions) as session:
        enqueue_text(session, chat_id=chat_id, text=text, now=ctx.clock.now(), reply_markup=reply_markup,
                     person_id=person_id)
    ctx.on_notifications()


def current_priority() -> int:
    """The urgency of the event being rendered now (other channels' outboxes queue at it too)."""
    return _priority.get()
