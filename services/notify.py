"""Writing notifications: the only way anything reaches a chat.

Callers add rows inside their own transaction, so a message exists exactly when the change
that caused it was committed; bot/delivery.py sends them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from models.tables import Notification, NotificationStatus
from services.context import ServiceContext
from services.db import transaction


def enqueue(
    session: Session,
    *,
    chat_id: int,
    method: str,
    payload: dict[str, Any],
    now: datetime,
    person_id: int | None = None,
    case_id: int | None = None,
) -> Notification:
    """Queue one Bot API call (e.g. sendMessage with `{"text": ...}`) to `chat_id` in `session`."""
    row = Notification(
        chat_id=chat_id,
        method=method,
        payload=payload,
        person_id=person_id,
        case_id=case_id,
        status=NotificationStatus.PENDING,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    return row


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
