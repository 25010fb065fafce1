"""Health figures of the case store for /health."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import func, select

from models.tables import Notification, NotificationStatus
from services.context import ServiceContext


def store_health(ctx: ServiceContext) -> dict[str, Any]:
    """`{"ok": True, "backend": ..., "notifications_pending": n}` or `{"ok": False, "error": ...}`; never raises."""
    try:
        with ctx.sessions() as session:
            session.execute(sa.text("SELECT 1"))
            pending = session.exec(
                select(func.count()).select_from(Notification).where(
                    Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING])
                )
            ).one()
            backend = session.get_bind().dialect.name
        return {"ok": True, "backend": backend, "notifications_pending": pending}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: health must answer
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
