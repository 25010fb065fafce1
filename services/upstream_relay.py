"""The outbox relay: sends each committed outbox row to the upstream platform of record.

What callers may rely on:
- Each outbox row is sent as one JSON event to ``{upstream}/api/v1/sync/events`` with
  ``Idempotency-Key`` = its event id (``<instance_id>:<outbox id>``) and the case's event number
  (``seq``), over httpx with explicit connect/read/write/pool timeouts.
- Events of one case leave in the order they were written: a case's next event is sent only after
  the previous one was accepted; a dead letter holds back the later events of its case.
- Network errors, timeouts, 408/409/425/429 and 5xx are retried with exponential backoff and
  jitter (tenacity's wait functions; a 429's Retry-After is honoured when longer). Any other 4xx,
  or `upstream_max_attempts` tries, makes the row a dead letter (`OutboxStatus.DEAD`), listed and
  retried with `onegrid outbox dead-letters` / `onegrid outbox retry`.
- Rows are claimed with a lease (a conditional update of `next_attempt_at`), so two relays on one
  database never send the same row at once; a crash mid-send re-sends after the lease, and the
  receiver's idempotency makes that harmless.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, func, select
from tenacity import wait_exponential, wait_random

from models.lifecycle import Role
from models.tables import Case, CaseEvent, OutboxItem, OutboxStatus
from services.context import ServiceContext
from services.db import transaction

log = logging.getLogger(__name__)

SYNC_PATH = "/api/v1/sync/events"
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
CLAIM_LEASE = timedelta(seconds=120)
MAX_ERROR = 2000


@dataclass
class RelayStats:
    """What the relay did since it started: per outcome, and sent, retried and dead counts."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1


@dataclass(frozen=True)
class _Attempt:
    """The one field of tenacity's RetryCallState that its wait functions read."""

    attempt_number: int


def backoff(settings: Any) -> Any:
    """Exponential backoff with jitter: initial·2^(n-1) capped at max, plus up to `initial` of jitter."""
    initial, cap = settings.upstream_backoff_initial_s, settings.upstream_backoff_max_s
    return wait_exponential(multiplier=initial, max=cap) + wait_random(0, initial)


def event_id(instance_id: str, outbox_id: int) -> str:
    return f"{instance_id}:{outbox_id}"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def due_heads(session: Session, now: datetime, limit: int) -> list[OutboxItem]:
    """Pending rows due by `now` that head their case (no earlier unsent row), oldest first."""
    earlier = aliased(OutboxItem)
    blocked = (
        select(earlier.id)
        .where(earlier.case_id == OutboxItem.case_id, earlier.id < OutboxItem.id,
               earlier.status.in_([OutboxStatus.PENDING.value, OutboxStatus.DEAD.value,
                                   OutboxStatus.FAILED.value]))
        .exists()
    )
    return list(session.exec(
        select(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.PENDING.value, OutboxItem.next_attempt_at <= now, ~blocked)
        .order_by(OutboxItem.id)
        .limit(limit)
    ))


def _case_snapshot(case: Case) -> dict[str, Any]:
    return {
        "number": case.number,
        "source": str(case.source),
        "category_code": case.category_code,
        "lat": case.lat,
        "lon": case.lon,
        "description": case.description,
        "address": case.address,
        "media_urls": list(case.media_urls or []),
        "report_count": case.report_count,
        "created_at": case.created_at.isoformat() if case.created_at else None,
    }


def _actor_role(session: Session, row: OutboxItem) -> str:
    payload = row.payload
    if not row.topic.startswith("case.") or "action" not in payload:
        return Role.SYSTEM.value
    at = datetime.fromisoformat(payload["at"])
    ev = session.exec(
        select(CaseEvent.actor_role).where(CaseEvent.case_id == row.case_id, CaseEvent.action == payload["action"],
                                           CaseEvent.to_status == payload["to"], CaseEvent.at == at)
        .order_by(CaseEvent.id)
    ).first()
    return str(ev) if ev is not None else Role.SYSTEM.value


def build_event(session: Session, row: OutboxItem, instance_id: str) -> dict[str, Any]:
    """The JSON document sent upstream for one outbox row."""
    seq = session.exec(
        select(func.count()).select_from(OutboxItem).where(OutboxItem.case_id == row.case_id, OutboxItem.id <= row.id)
    ).one() if row.case_id is not None else 1
    case = session.get(Case, row.case_id) if row.case_id is not None else None
    return {
        "event_id": event_id(instance_id, row.id),
        "origin": instance_id,
        "topic": row.topic,
        "seq": seq,
        "actor_role": _actor_role(session, row),
        "payload": row.payload,
        "case": _case_snapshot(case) if case is not None else None,
    }


class UpstreamRelay:
    """Sends due outbox rows to the upstream. One per process; `run` until `stop` is set."""

    def __init__(self, ctx: ServiceContext, client: httpx.AsyncClient, *, base_url: str,
                 api_key: str | None) -> None:
        self.ctx = ctx
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.settings = ctx.settings
        self.wait = backoff(ctx.settings)
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake_threadsafe(self) -> None:
        """Look at the outbox now (a change was committed); safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 1.0) -> None:
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                sent = await self.run_once()
            except Exception:  # noqa: BLE001 - the relay must outlive a bad cycle; rows stay queued
                log.exception("upstream relay cycle failed; retrying")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_interval)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """Send every due head-of-case event once; returns how many were attempted."""
        now = self.ctx.clock.now()
        claimed = await asyncio.to_thread(self._claim, now)
        if not claimed:
            return 0
        semaphore = asyncio.Semaphore(max(1, self.settings.upstream_concurrency))

        async def one(item: tuple[int, int, dict[str, Any]]) -> None:
            async with semaphore:
                await self._send(*item)

        await asyncio.gather(*(one(item) for item in claimed))
        return len(claimed)

    def _claim(self, now: datetime) -> list[tuple[int, int, dict[str, Any]]]:
        out = []
        with transaction(self.ctx.sessions) as session:
            for row in due_heads(session, now, self.settings.upstream_batch):
                won = session.execute(
                    sa.update(OutboxItem)
                    .where(OutboxItem.id == row.id, OutboxItem.status == OutboxStatus.PENDING.value,
                           OutboxItem.next_attempt_at == row.next_attempt_at)
                    .values(next_attempt_at=now + CLAIM_LEASE)
                ).rowcount
                if won == 1:
                    out.append((row.id, row.attempts, build_event(session, row, self.settings.instance_id)))
        return out

    async def _send(self, outbox_id: int, attempts: int, event: dict[str, Any]) -> None:
        headers = {"Idempotency-Key": event["event_id"], "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        retry_after: float | None = None
        try:
            response = await self.client.post(f"{self.base_url}{SYNC_PATH}", json=event, headers=headers)
        except httpx.TimeoutException as exc:
            outcome, error = "timeout", f"{type(exc).__name__}: {exc}"
        except httpx.TransportError as exc:
            outcome, error = "network", f"{type(exc).__name__}: {exc}"
        else:
            code = response.status_code
            error = f"HTTP {code}: {response.text[:500]}"
            if 200 <= code < 300:
                outcome = "sent"
            elif code >= 500 or code in _RETRYABLE_STATUS:
                outcome = f"http_{code}" if code in _RETRYABLE_STATUS else "http_5xx"
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self.ctx.clock.now())
            else:
                outcome = "refused"
        self.stats.count(outcome)
        if outcome == "sent":
            body = _json_or_none(response)
            await asyncio.to_thread(self._mark_sent, outbox_id, event, body)
            self.stats.sent += 1
            return
        await asyncio.to_thread(self._mark_failed, outbox_id, attempts + 1, error, retry_after,
                                permanent=outcome == "refused")

    def _mark_sent(self, outbox_id: int, event: dict[str, Any], body: dict[str, Any] | None) -> None:
        now = self.ctx.clock.now()
        with transaction(self.ctx.sessions) as session:
            row = session.get(OutboxItem, outbox_id)
            session.execute(sa.update(OutboxItem).where(OutboxItem.id == outbox_id).values(
                status=OutboxStatus.SENT.value, sent_at=now, attempts=OutboxItem.attempts + 1, last_error=None))
            # The upstream's id of the case: later polls and pushes about it find it by this.
            remote = (body or {}).get("service_request_id")
            if remote and row is not None and row.case_id is not None:
                session.execute(sa.update(Case).where(Case.id == row.case_id, Case.external_id.is_(None))
                                .values(external_id=str(remote)[:200]))

    def _mark_failed(self, outbox_id: int, attempts: int, error: str, retry_after: float | None, *,
                     permanent: bool) -> None:
        now = self.ctx.clock.now()
        dead = permanent or attempts >= self.settings.upstream_max_attempts
        delay = self.wait(_Attempt(attempts))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.upstream_backoff_max_s))
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:MAX_ERROR]}
        if dead:
            values["status"] = OutboxStatus.DEAD.value
            self.stats.dead += 1
            log.warning("outbox %s is a dead letter after %s tries: %s", outbox_id, attempts, error[:200])
        else:
            values["next_attempt_at"] = now + timedelta(seconds=delay)
            self.stats.retried += 1
        with transaction(self.ctx.sessions) as session:
            session.execute(sa.update(OutboxItem).where(OutboxItem.id == outbox_id).values(**values))


def _json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def make_client(settings: Any, *, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The httpx client for the upstream, with explicit timeouts on every phase."""
    timeout = httpx.Timeout(connect=settings.upstream_connect_timeout_s, read=settings.upstream_read_timeout_s,
                            write=settings.upstream_read_timeout_s, pool=settings.upstream_connect_timeout_s)
    return httpx.AsyncClient(timeout=timeout, transport=transport, headers={"User-Agent": "OneGrid-relay/1"})


def dead_letters(ctx: ServiceContext, *, limit: int = 100) -> list[OutboxItem]:
    """Dead letters, oldest first."""
    with ctx.sessions() as session:
        return list(session.exec(select(OutboxItem).where(OutboxItem.status == OutboxStatus.DEAD.value)
                                 .order_by(OutboxItem.id).limit(limit)))


def retry_dead_letters(ctx: ServiceContext, *, ids: list[int] | None = None) -> int:
    """Queue dead letters again (all, or those in `ids`) with a fresh try budget; returns how many."""
    with transaction(ctx.sessions) as session:
        stmt = sa.update(OutboxItem).where(OutboxItem.status == OutboxStatus.DEAD.value)
        if ids is not None:
            stmt = stmt.where(OutboxItem.id.in_(ids))
        result = session.execute(stmt.values(status=OutboxStatus.PENDING.value, attempts=0,
                                             next_attempt_at=ctx.clock.now()))
    return result.rowcount or 0


def outbox_health(ctx: ServiceContext) -> dict[str, Any]:
    """Queue depth per status and the age in seconds of the oldest pending row (0 when none)."""
    with ctx.sessions() as session:
        by_status = dict(session.exec(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all())
        oldest = session.exec(select(func.min(OutboxItem.created_at))
                              .where(OutboxItem.status == OutboxStatus.PENDING.value)).one()
    age = (ctx.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
    if oldest is not None and oldest.tzinfo is None:  # SQLite aggregate skips the type decorator
        age = (ctx.clock.now() - oldest.replace(tzinfo=UTC)).total_seconds()
    return {"by_status": {str(k): v for k, v in by_status.items()}, "oldest_pending_age_s": max(0.0, age)}

