"""Telegram webhook mode: store each update durably before answering, then process each update_id once.

What callers may rely on:
- `store_update` commits the raw update (keyed by its update_id) before returning; a redelivery
  of the same update_id stores nothing new.
- `WebhookProcessor` hands stored updates to the dispatcher one at a time in update_id order
  (Telegram's order), marks each done after its handlers ran, and picks up after a restart
  whatever was stored but not done. An update whose handlers raise is retried a few times with
  backoff, then marked failed and kept, so one bad update never blocks the rest.
- Exactly once holds except for a crash *during* a handler: that update is handled again after
  its lease (at least once rather than never).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import func, select

from models.api import WebhookUpdate
from services.context import ServiceContext
from services.db import transaction

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 5


class BadUpdate(ValueError):
    """The body is not a Telegram update (no integer update_id)."""


def store_update(ctx: ServiceContext, *, payload: dict[str, Any]) -> bool:
    """Store the update; True when it is new, False for a redelivery. Raises BadUpdate."""
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0 or update_id >= 2**63:
        raise BadUpdate("an update needs a non-negative integer update_id")
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(WebhookUpdate.__table__).values(
            update_id=update_id, payload=payload, state="pending", attempts=0, received_at=now,
        ).on_conflict_do_nothing(index_elements=["update_id"]).returning(WebhookUpdate.__table__.c.update_id)
        # RETURNING yields the row only when it was inserted; rowcount is not reliable here on psycopg.
        inserted = session.execute(stmt).first() is not None
    return inserted


def _claim_next(ctx: ServiceContext) -> tuple[int, dict[str, Any], int] | None:
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        row = session.exec(
            select(WebhookUpdate)
            .where(WebhookUpdate.state.in_(["pending", "processing"]),
                   sa.or_(WebhookUpdate.lease_until.is_(None), WebhookUpdate.lease_until <= now))
            .order_by(WebhookUpdate.update_id).limit(1)
        ).first()
        if row is None:
            return None
        won = session.execute(
            sa.update(WebhookUpdate)
            .where(WebhookUpdate.update_id == row.update_id, WebhookUpdate.state == row.state,
                   WebhookUpdate.attempts == row.attempts)
            .values(state="processing", lease_until=now + LEASE, attempts=row.attempts + 1)
        ).rowcount
        if won != 1:
            return None
        return row.update_id, row.payload, row.attempts + 1


def _finish(ctx: ServiceContext, update_id: int, *, error: str | None, attempts: int) -> None:
    now = ctx.clock.now()
    if error is None:
        values: dict[str, Any] = {"state": "done", "processed_at": now, "lease_until": None, "last_error": None}
    elif attempts >= MAX_ATTEMPTS:
        values = {"state": "failed", "lease_until": None, "last_error": error[:2000]}
    else:
        values = {"state": "pending", "lease_until": now + timedelta(seconds=2 ** attempts),
                  "last_error": error[:2000]}
    with transaction(ctx.sessions) as session:
        session.execute(sa.update(WebhookUpdate).where(WebhookUpdate.update_id == update_id).values(**values))


def pending_count(ctx: ServiceContext) -> int:
    with ctx.sessions() as session:
        return session.exec(select(func.count()).select_from(WebhookUpdate).where(
            WebhookUpdate.state.in_(["pending", "processing"]))).one()


class WebhookProcessor:
    """Feeds stored updates to `feed` (normally `dispatcher.feed_raw_update(bot, update)`)."""

    def __init__(self, ctx: ServiceContext, feed: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.ctx = ctx
        self.feed = feed
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.processed = 0
        self.failed = 0

    def wake(self) -> None:
        """Look at the store now; safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run_once(self) -> int:
        """Process every update that is due now; returns how many were handed to `feed`."""
        count = 0
        while True:
            claimed = await asyncio.to_thread(_claim_next, self.ctx)
            if claimed is None:
                return count
            update_id, payload, attempts = claimed
            error = None
            try:
                await self.feed(payload)
            except Exception as exc:  # noqa: BLE001 - recorded and retried, never lost
                log.exception("update %s failed (attempt %s)", update_id, attempts)
                error = f"{type(exc).__name__}: {exc}"
                self.failed += 1
            await asyncio.to_thread(_finish, self.ctx, update_id, error=error, attempts=attempts)
            count += 1
            self.processed += error is None

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 1.0) -> None:
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # noqa: BLE001 - the store may be briefly unavailable; keep going
                log.exception("webhook processing cycle failed; retrying")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_interval)
            except TimeoutError:
                pass
