"""Store counts for the /metrics scrape: cases, notifications and stored webhook updates by state, and the outbox.

What callers may rely on: one call reads everything in one session (plus the outbox health read);
any store failure propagates, so the caller can report the store as down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import func, select

from models.api import WebhookUpdate
from models.tables import Case, Notification
from services.context import ServiceContext
from services.upstream import outbox_health


@dataclass(frozen=True)
class StoreCounts:
    cases: list[tuple[Any, int]]  # (status, count)
    notifications: list[tuple[Any, int]]  # (status, count)
    webhook_updates: list[tuple[Any, int]]  # (state, count)
    outbox: dict[str, Any]  # see `services.upstream.outbox_health`


def store_counts(ctx: ServiceContext) -> StoreCounts:
    with ctx.sessions() as session:
        cases = session.exec(select(Case.status, func.count()).group_by(Case.status)).all()
        notes = session.exec(select(Notification.status, func.count()).group_by(Notification.status)).all()
        webhook = session.exec(select(WebhookUpdate.state, func.count()).group_by(WebhookUpdate.state)).all()
    return StoreCounts(list(cases), list(notes), list(webhook), outbox_health(ctx))
