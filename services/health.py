"""Health figures of the case store for /health and the store's part of /health/ready."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

import sqlalchemy as sa
from sqlmodel import func, select

from models.tables import Notification, NotificationStatus
from services.context import ServiceContext
from services.db import schema_state


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


def readiness(ctx: ServiceContext, *, engine: Engine) -> dict[str, dict[str, Any]]:
    """The store's readiness checks: `{"store": {...}, "schema": {...}}`, each with `ok` and, when not ok,
    a `problem` saying what to do. Never raises."""
    store = store_health(ctx)
    checks: dict[str, dict[str, Any]] = {"store": {"ok": store["ok"]}}
    if not store["ok"]:
        checks["store"]["problem"] = f"the store does not answer ({store['error']}); check ONEGRID_DATABASE_URL"
    try:
        state = schema_state(engine)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: readiness must answer
        checks["schema"] = {"ok": False, "problem": f"cannot read the schema version ({type(exc).__name__})"}
        return checks
    checks["schema"] = {"ok": state.at_head, "current": list(state.current), "head": list(state.head)}
    if state.problem:
        checks["schema"]["problem"] = state.problem
    return checks
