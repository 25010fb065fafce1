"""The outbox relay: sends each committed outbox row to the upstream platform of record.

What callers may rely on:
- Each outbox row is one JSON event with its event id (``<instance_id>:<outbox id>``) and the
  case's event number (``seq``), sent over httpx with explicit connect/read/write/pool timeouts.
- Batches: up to `upstream_batch_size` events in one ``POST {upstream}/api/v1/sync/events/batch``,
  answered with a result per event. An upstream without it (404/405/501) gets each event alone on
  ``POST {upstream}/api/v1/sync/events`` with ``Idempotency-Key`` = the event id, as before.
- Events of one case leave in the order they were written: in one batch, in order, or one request
  after the other; a case's later events wait while an earlier one is retried, and a dead letter
  holds them back. A rejected event does not hold back other cases.
- Network errors, timeouts, 408/409/425/429 and 5xx (for a whole batch or one event), and
  rejections the upstream calls retryable, are retried with exponential backoff and jitter
  (tenacity's wait functions; a 429's Retry-After is honoured when longer). Any other 4xx or
  rejection, or `upstream_max_attempts` tries, makes the row a dead letter (`OutboxStatus.DEAD`),
  listed and retried with `onegrid outbox dead-letters` / `onegrid outbox retry`.
- Rows are claimed with a lease (a conditional update of `next_attempt_at`), so two relays on one
  database never send the same row at once; a crash or a timeout mid-send re-sends after the lease
  or the backoff, and the receiver's per-event idempotency makes that harmless.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session, func, select
from tenacity import wait_exponential, wait_random

from models.tables import OutboxItem, OutboxStatus
from services.context import ServiceContext
from services.db import transaction
from services.upstream_outbox import Claimed, Outcome, build_events, claim, due_heads, event_id, settle

__all__ = ["BATCH_PATH", "SYNC_PATH", "RelayStats", "UpstreamRelay", "backoff", "build_event", "dead_letters",
           "due_heads", "event_id", "make_client", "outbox_health", "parse_retry_after", "retry_dead_letters"]

log = logging.getLogger(__name__)

SYNC_PATH = "/api/v1/sync/events"
BATCH_PATH = "/api/v1/sync/events/batch"
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_NO_BATCHES = frozenset({404, 405, 501})  # an upstream without the batch endpoint


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


def build_event(session: Session, row: OutboxItem, instance_id: str) -> dict[str, Any]:
    """The JSON document sent upstream for one outbox row."""
    return build_events(session, [(row.id, row.case_id, row.attempts)], instance_id)[0].event


class UpstreamRelay:
    """Sends due outbox rows to the upstream. One per process; `run` until `stop` is set.

    Batches of up to `upstream_batch_size` events go to ``BATCH_PATH``, each case's rows whole and in
    order within one batch, so concurrent batches never hold rows of one case. An upstream that
    answers the batch path 404/405/501 gets one event per request on ``SYNC_PATH`` from then on; a
    batch refused as too large (413) is sent that way too.
    """

    def __init__(self, ctx: ServiceContext, client: httpx.AsyncClient, *, base_url: str,
                 api_key: str | None) -> None:
        self.ctx = ctx
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.settings = ctx.settings
        self.wait = backoff(ctx.settings)
        self.stats = RelayStats()
        # None: not known yet; False: the upstream takes one event per request (or batches are off).
        self.batches: bool | None = None if ctx.settings.upstream_batch_size > 1 else False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake_threadsafe(self) -> None:
        """Look at the outbox now (a change was committed); safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 1.0) -> None:
        """Keep `upstream_concurrency` batches in flight: claim more as soon as one is answered.

        Rows in flight hold their lease, so the next claim skips them and every later row of their
        case; a case's events still leave in order. On `stop` the batches in flight are finished.
        """
        self._loop = asyncio.get_running_loop()
        slots = max(1, self.settings.upstream_concurrency)
        inflight: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                claimed = 0
                if len(inflight) < slots:
                    room = (slots - len(inflight)) * max(1, self.settings.upstream_batch_size)
                    try:
                        rows = await asyncio.to_thread(claim, self.ctx, self.ctx.clock.now(),
                                                       min(self.settings.upstream_batch, room))
                    except Exception:  # noqa: BLE001 - the relay must outlive a bad cycle; rows stay queued
                        log.exception("upstream relay claim failed; retrying")
                        rows = []
                    claimed = len(rows)
                    inflight.update(asyncio.create_task(self._send_chunk(chunk)) for chunk in self._chunks(rows))
                if claimed and len(inflight) < slots:
                    continue
                self._wake.clear()
                woken = asyncio.create_task(self._wake.wait())
                stopped = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({*inflight, woken, stopped}, timeout=poll_interval,
                                             return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                stopped.cancel()
                for task in done - {woken, stopped}:
                    inflight.discard(task)
                    _log_failure(task)
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)

    async def run_once(self) -> int:
        """Send every due event once (a case's rows in order); returns how many rows were claimed."""
        claimed = await asyncio.to_thread(claim, self.ctx, self.ctx.clock.now(), self.settings.upstream_batch)
        if claimed:
            semaphore = asyncio.Semaphore(max(1, self.settings.upstream_concurrency))

            async def send(chunk: list[list[Claimed]]) -> None:
                async with semaphore:
                    await self._send_chunk(chunk)

            await asyncio.gather(*(send(chunk) for chunk in self._chunks(claimed)))
        return len(claimed)

    def _chunks(self, claimed: list[Claimed]) -> list[list[list[Claimed]]]:
        """Each case's rows as one run, in order; runs packed into batches (one run each without batches)."""
        runs: dict[Any, list[Claimed]] = {}
        for row in claimed:  # oldest first, so each case's run is in order
            runs.setdefault(row.case_id if row.case_id is not None else ("row", row.outbox_id), []).append(row)
        if self.batches is False:
            return [[run] for run in runs.values()]
        return _pack(list(runs.values()), self.settings.upstream_batch_size)

    async def _send_chunk(self, chunk: list[list[Claimed]]) -> None:
        """One batch; if the upstream takes no batches (or not this one), its runs one event at a time."""
        if self.batches is not False and await self._send_batch(chunk):
            return
        semaphore = asyncio.Semaphore(max(1, self.settings.upstream_concurrency))

        async def one_by_one(run: list[Claimed]) -> None:
            async with semaphore:
                await self._send_run(run)

        await asyncio.gather(*(one_by_one(run) for run in chunk))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _post(self, path: str, body: Any, headers: dict[str, str]) -> tuple[str, str, Any, float | None]:
        """POST and classify: (outcome, error, response or None, Retry-After seconds or None)."""
        try:
            response = await self.client.post(f"{self.base_url}{path}", json=body, headers=headers)
        except httpx.TimeoutException as exc:
            return "timeout", f"{type(exc).__name__}: {exc}", None, None
        except httpx.TransportError as exc:
            return "network", f"{type(exc).__name__}: {exc}", None, None
        code = response.status_code
        error = f"HTTP {code}: {response.text[:500]}"
        if 200 <= code < 300:
            return "sent", error, response, None
        if code >= 500 or code in _RETRYABLE_STATUS:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.ctx.clock.now())
            return (f"http_{code}" if code in _RETRYABLE_STATUS else "http_5xx"), error, response, retry_after
        return "refused", error, response, None

    async def _send_batch(self, chunk: list[list[Claimed]]) -> bool:
        """Send whole runs of cases as one batch and record every outcome; False when batches are unknown there."""
        rows = [row for run in chunk for row in run]
        outcome, error, response, retry_after = await self._post(BATCH_PATH, {"events": [r.event for r in rows]},
                                                                 self._headers())
        if response is not None and response.status_code == 413:
            log.info("the upstream refused a batch of %s events as too large: sent one by one", len(rows))
            return False
        if response is not None and response.status_code in _NO_BATCHES:
            if self.batches is not False:
                log.info("the upstream has no batch endpoint (HTTP %s): one event per request",
                         response.status_code)
            self.batches = False
            return False
        results = _results(response) if outcome == "sent" else None
        if outcome == "sent" and (results is None or len(results) != len(rows)):
            outcome, error = "bad_answer", f"{error[:200]}: no result per event"
        outcomes: list[Outcome] = []
        if outcome != "sent":
            for run in chunk:  # the head of each case counts a try; the rest wait behind it untried
                outcomes.append(self._failed(run[0], outcome, error, retry_after, permanent=outcome == "refused"))
                outcomes.extend(self._released(row) for row in run[1:])
        else:
            self.batches = True
            for row, result in zip(rows, results, strict=True):
                outcomes.append(self._judged(row, result))
        await asyncio.to_thread(settle, self.ctx, outcomes, {r.outbox_id: r for r in rows})
        return True

    def _judged(self, row: Claimed, result: Any) -> Outcome:
        if not isinstance(result, dict) or result.get("event_id") not in (None, row.event["event_id"]):
            return self._failed(row, "bad_answer", f"no result for {row.event['event_id']}", None, permanent=False)
        status = result.get("status")
        if status in ("accepted", "duplicate"):
            self.stats.count("sent")
            self.stats.sent += 1
            return Outcome(row.outbox_id, sent=True, remote_id=result.get("service_request_id"))
        reason = str(result.get("reason") or "rejected")
        error = f"rejected ({reason}): {str(result.get('message') or '')[:500]}"
        if reason == "blocked":
            return self._released(row, error)
        return self._failed(row, reason if result.get("retryable") else "refused", error, None,
                            permanent=not result.get("retryable"))

    async def _send_run(self, run: list[Claimed]) -> None:
        """One case's rows on the single-event path, each after the previous one was accepted."""
        outcomes: list[Outcome] = []
        for index, row in enumerate(run):
            headers = {**self._headers(), "Idempotency-Key": row.event["event_id"]}
            outcome, error, response, retry_after = await self._post(SYNC_PATH, row.event, headers)
            if outcome != "sent":
                outcomes.append(self._failed(row, outcome, error, retry_after, permanent=outcome == "refused"))
                outcomes.extend(self._released(later) for later in run[index + 1:])
                break
            self.stats.count("sent")
            self.stats.sent += 1
            outcomes.append(Outcome(row.outbox_id, sent=True, remote_id=(_json_or_none(response) or {})
                                    .get("service_request_id")))
        await asyncio.to_thread(settle, self.ctx, outcomes, {r.outbox_id: r for r in run})

    def _failed(self, row: Claimed, outcome: str, error: str, retry_after: float | None, *,
                permanent: bool) -> Outcome:
        self.stats.count(outcome)
        attempts = row.attempts + 1
        dead = permanent or attempts >= self.settings.upstream_max_attempts
        delay = self.wait(_Attempt(attempts))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.upstream_backoff_max_s))
        if dead:
            self.stats.dead += 1
            log.warning("outbox %s is a dead letter after %s tries: %s", row.outbox_id, attempts, error[:200])
        else:
            self.stats.retried += 1
        return Outcome(row.outbox_id, error=error, attempts=attempts, dead=dead, retry_in=delay)

    @staticmethod
    def _released(row: Claimed, error: str = "held back behind an earlier event of its case") -> Outcome:
        return Outcome(row.outbox_id, error=error, attempts=row.attempts, retry_in=0.0)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("upstream relay batch failed; its rows are sent again after their lease",
                  exc_info=task.exception())


def _pack(runs: list[list[Claimed]], size: int) -> list[list[list[Claimed]]]:
    """Runs into batches of about `size` events, each run whole (a run longer than `size` goes alone)."""
    chunks: list[list[list[Claimed]]] = []
    filled = size
    for run in runs:
        if filled + len(run) > size:
            chunks.append([])
            filled = 0
        chunks[-1].append(run)
        filled += len(run)
    return chunks


def _results(response: httpx.Response) -> list[Any] | None:
    body = _json_or_none(response)
    results = (body or {}).get("results")
    return results if isinstance(results, list) else None


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

