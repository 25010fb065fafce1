"""Which notification rows the sender takes next: due, most urgent chat first, each chat in queue order.

A chat is as urgent as the most urgent row it has waiting (models.tables.Priority), so an urgent order
never waits behind housekeeping, and a chat never sees a later message before an earlier one: a row is
held back while an earlier row of its chat is on the wire (leased) or waiting for a retry.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlmodel import select
from sqlmodel.sql.expression import SelectOfScalar

from models.tables import Notification, NotificationStatus


def due_rows(now: datetime, *, limit: int, lock: bool) -> SelectOfScalar[Notification]:
    """The query for up to `limit` due rows in sending order; `lock` (PostgreSQL) skips rows another
    process has locked, so two OneGrid processes on one database never take the same row."""
    earlier = aliased(Notification)
    held_back = sa.exists().where(
        earlier.chat_id == Notification.chat_id,
        earlier.id < Notification.id,
        sa.or_(
            sa.and_(earlier.status == NotificationStatus.SENDING, earlier.lease_until > now),
            sa.and_(earlier.status == NotificationStatus.PENDING, earlier.next_attempt_at > now),
        ),
    )
    due = sa.or_(
        sa.and_(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now),
        sa.and_(Notification.status == NotificationStatus.SENDING, Notification.lease_until <= now),
    )
    queued = aliased(Notification)
    chat_urgency = (
        sa.select(sa.func.min(queued.priority))
        .where(queued.chat_id == Notification.chat_id,
               queued.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))
        .scalar_subquery()
    )
    query = select(Notification).where(due, ~held_back).order_by(chat_urgency, Notification.id).limit(limit)
    if lock:
        query = query.with_for_update(skip_locked=True, of=Notification)
    return query


def take_over(session: Session, since: datetime) -> tuple[int, set[int]]:
    """A new sender starts (the previous one died): rows it left SENDING are due again now, not after
    their lease. Returns how many, and the chats the previous sender may have written to since `since`
    (those rows, and what it sent since): the new sender keeps their pace as if it had sent just now."""
    recent = set(session.execute(
        sa.select(Notification.chat_id).distinct()
        .where(sa.or_(Notification.status == NotificationStatus.SENDING, Notification.sent_at >= since))
    ).scalars())
    given_back = session.execute(
        sa.update(Notification).where(Notification.status == NotificationStatus.SENDING)
        .values(status=NotificationStatus.PENDING, lease_until=None)
    ).rowcount
    return given_back, recent


def by_chat(rows: list[dict[str, Any]]) -> OrderedDict[int, list[dict[str, Any]]]:
    by_chat: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
    for row in rows:
        by_chat.setdefault(row["chat_id"], []).append(row)
    return by_chat


def limit_per_chat(rows: list[Notification], max_chats: int | None, per_chat: int | None) -> list[Notification]:
    """The first rows of at most `max_chats` chats, at most `per_chat` of each, keeping the given order.

    Rows come most urgent chat first and in queue order within a chat, so a prefix per chat keeps order.
    """
    if max_chats is None and per_chat is None:
        return list(rows)
    taken: dict[int, int] = {}
    out: list[Notification] = []
    for row in rows:
        count = taken.get(row.chat_id)
        if count is None:
            if max_chats is not None and len(taken) >= max_chats:
                continue
            count = 0
        if per_chat is not None and count >= per_chat:
            continue
        taken[row.chat_id] = count + 1
        out.append(row)
    return out


