"""Sync with the upstream platform of record: the outbox relay out, signed pushes and polling in.

Outbound (`UpstreamRelay`), what callers may rely on:
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

Receiving (`apply_downstream_event`): a OneGrid that is the upstream of another mirrors each of
the other's cases, applying its events through the lifecycle, once each and in order (`seq`).

Inbound from the upstream (`apply_upstream_request`, used by the signed push endpoint and by
`poll_upstream_once`): Open311 service requests; unknown open ones become local cases
(source ``upstream``, dispatched like any other), a close upstream closes the local case where
the lifecycle allows the SYSTEM actor to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, func, select
from tenacity import wait_exponential, wait_random

from models.api import IntakeClaim, SyncCursor, SyncLink
from models.lifecycle import TERMINAL, Action, Actor, LifecycleError, Role, Status, open_case, transition
from models.tables import Case, CaseEvent, CaseSource, Category, OutboxItem, OutboxStatus
from services import cases
from services.api_keys import Principal, area_in_scope
from services.cases import CaseError, OutsideGrid, StaleCase, UnknownCategory
from services.context import ServiceContext
from services.db import transaction

log = logging.getLogger(__name__)

SYNC_PATH = "/api/v1/sync/events"
POLL_FEED = "upstream_requests"
SYSTEM = Actor(Role.SYSTEM)
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
CLAIM_LEASE = timedelta(seconds=120)
MAX_ERROR = 2000


# ============================================================================ outbound relay


@dataclass
class RelayStats:
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
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _due_heads(session: Session, now: datetime, limit: int) -> list[OutboxItem]:
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
            for row in _due_heads(session, now, self.settings.upstream_batch):
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


# ============================================================================ receiving a downstream's events


class SyncRefused(CaseError):
    """The event cannot be applied as it stands; `retryable` says whether sending it later may work."""

    retryable = False


class OutOfOrder(SyncRefused):
    retryable = True


class Diverged(SyncRefused):
    """The mirror's state does not allow this event (the two instances disagree)."""

    retryable = True


class NotVisible(SyncRefused):
    """The case lies outside the sender's area."""


def _parse_time(value: Any) -> datetime:
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("times must carry a timezone")
    return when.astimezone(UTC)


def apply_downstream_event(ctx: ServiceContext, *, principal: Principal, event: dict[str, Any]) -> dict[str, Any]:
    """Apply one event of a downstream OneGrid to its mirror case here; idempotent by (origin, number, seq).

    Returns ``{"service_request_id", "number", "status", "duplicate"}``. Raises SyncRefused
    subclasses, UnknownCategory, OutsideGrid or ValueError (malformed event); nothing is written then.
    """
    origin = str(event.get("origin") or "")[:64]
    topic = str(event.get("topic") or "")
    seq = event.get("seq")
    snapshot = event.get("case") or {}
    payload = event.get("payload") or {}
    number = str(snapshot.get("number") or payload.get("number") or "")[:64]
    if not origin or not number or not isinstance(seq, int) or seq < 1 or not topic.startswith("case."):
        raise ValueError("an event needs origin, case number, topic case.* and seq ≥ 1")
    with transaction(ctx.sessions) as session:
        link = session.exec(select(SyncLink).where(SyncLink.origin == origin, SyncLink.origin_number == number)).first()
        if link is not None:
            case = session.get(Case, link.case_id)
            if not area_in_scope(session, principal, case.grid_code):
                raise NotVisible(number)
            if seq <= link.last_seq:
                return _sync_answer(case, duplicate=True)
            if seq != link.last_seq + 1:
                raise OutOfOrder(f"{number}: expected event {link.last_seq + 1}, got {seq}")
        elif topic != "case.report":
            raise OutOfOrder(f"{number}: no mirror yet; its report must come first")
        if link is None:
            case = _create_mirror(session, ctx, principal, snapshot, payload, event)
            session.add(SyncLink(origin=origin, origin_number=number, case_id=case.id, api_key_id=principal.id,
                                 last_seq=seq, updated_at=ctx.clock.now()))
        else:
            _apply_to_mirror(session, ctx, case, topic, payload, str(event.get("actor_role") or "system"))
            link.last_seq = seq
            link.updated_at = ctx.clock.now()
            session.add(link)
        session.flush()
        session.refresh(case)
        answer = _sync_answer(case, duplicate=False)
    ctx.on_notifications()
    return answer


def _sync_answer(case: Case, *, duplicate: bool) -> dict[str, Any]:
    return {"service_request_id": str(case.id), "number": case.number, "status": str(case.status),
            "duplicate": duplicate}


def _create_mirror(session: Session, ctx: ServiceContext, principal: Principal, snapshot: dict[str, Any],
                   payload: dict[str, Any], event: dict[str, Any]) -> Case:
    try:
        lat, lon = float(snapshot["lat"]), float(snapshot["lon"])
        source = CaseSource(snapshot.get("source") or CaseSource.UPSTREAM)
        at = _parse_time(payload.get("at") or snapshot.get("created_at"))
        role = Role(event.get("actor_role") or "system")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed case in event: {exc}") from None
    category_code = str(snapshot.get("category_code") or "")
    category = session.exec(select(Category).where(Category.code == category_code)).first()
    if category is None:
        raise UnknownCategory(category_code)
    grid_code = ctx.grid_map.lookup(lon, lat) if ctx.grid_map is not None else None
    if ctx.grid_map is not None and grid_code is None:
        raise OutsideGrid(f"{lat:.6f},{lon:.6f}")
    if not area_in_scope(session, principal, grid_code):
        raise NotVisible(str(snapshot.get("number")))
    case = Case(
        number=cases.next_case_number(session, prefix=ctx.case_prefix, now=at, timezone=ctx.timezone),
        source=source, category_code=category_code, description=str(snapshot.get("description") or "")[:4000],
        lat=lat, lon=lon, address=(str(snapshot["address"])[:500] if snapshot.get("address") else None),
        media_urls=[str(u)[:2000] for u in (snapshot.get("media_urls") or [])][:20],
        # Counters start fresh: the origin's later `case.repeated` events bring them up to date in order.
        grid_code=grid_code, status=Status.REPORTED, report_count=1,
        created_at=at, updated_at=at,
    )
    session.add(case)
    session.flush()
    cases._record(session, case, open_case(Actor(role), at=at))
    return case


def _apply_to_mirror(session: Session, ctx: ServiceContext, case: Case, topic: str, payload: dict[str, Any],
                     actor_role: str) -> None:
    if topic == "case.repeated":
        session.execute(sa.update(Case).where(Case.id == case.id).values(
            report_count=int(payload.get("report_count") or case.report_count),
            media_urls=[str(u)[:2000] for u in (payload.get("media_urls") or case.media_urls or [])][:20]))
        return
    try:
        action, role, at = Action(payload["action"]), Role(actor_role), _parse_time(payload["at"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"malformed event: {exc}") from None
    try:
        # The origin's people are not known here: the lifecycle judges the role, not the person.
        tr = transition(cases.facts_of(case), action, Actor(role), at=at, note=payload.get("note"))
    except LifecycleError as exc:
        raise Diverged(f"{case.number}: {exc}") from None
    cases._change_status(session, ctx, case, tr)


# ============================================================================ inbound from the upstream


class BadSignature(Exception):
    """A push whose signature or timestamp does not check out."""


def sign_push(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` (what the upstream sends)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_push(secret: str, *, timestamp: str | None, signature: str | None, body: bytes, now: datetime,
                tolerance_s: int) -> None:
    """Raise BadSignature unless `signature` is ours over `timestamp` and `body` and the timestamp is fresh."""
    if not timestamp or not signature or not timestamp.strip().lstrip("-").isdigit():
        raise BadSignature("missing signature or timestamp")
    ts = int(timestamp.strip())
    if abs(now.timestamp() - ts) > tolerance_s:
        raise BadSignature("timestamp outside the allowed window")
    if not hmac.compare_digest(sign_push(secret, ts, body), signature.strip()):
        raise BadSignature("signature does not match")


def _upstream_status_closed(request: dict[str, Any]) -> bool:
    return str(request.get("status") or "open").lower() == "closed"


def apply_upstream_request(ctx: ServiceContext, *, request: dict[str, Any]) -> str:
    """Apply one Open311 service request from the upstream; returns what happened.

    Outcomes: ``imported`` (a new local case), ``closed`` (the local case was closed or
    verified), ``unchanged``, ``ignored`` (a closed request we never had), ``conflict`` (closed
    upstream while a worker is on it here: left for people), ``rejected`` (unknown category,
    outside the map, malformed). Idempotent: applying the same request twice changes nothing more.
    """
    remote_id = str(request.get("service_request_id") or "").strip()[:200]
    if not remote_id:
        return "rejected"
    closed = _upstream_status_closed(request)
    with ctx.sessions() as session:
        case = session.exec(select(Case).where(Case.external_id == remote_id)).first()
        if case is None and request.get("onegrid_origin") == ctx.settings.instance_id:
            # One of our own cases, mirrored upstream before we learnt its id there.
            case = session.exec(select(Case).where(Case.number == request.get("onegrid_origin_number"))).first()
            if case is not None:
                session.execute(sa.update(Case).where(Case.id == case.id, Case.external_id.is_(None))
                                .values(external_id=remote_id))
                session.commit()
    if case is None:
        return "ignored" if closed else _import(ctx, remote_id, request)
    status = Status(case.status)
    if not closed or status in TERMINAL:
        return "unchanged"
    if status is Status.AWAITING_VERIFICATION:
        action = Action.APPROVE
    elif status in (Status.REPORTED, Status.REGISTERED, Status.DISPATCHED, Status.RETURNED, Status.SHELVED):
        action = Action.CANCEL
    else:
        log.warning("case %s closed upstream while %s here; left for people", case.number, status)
        return "conflict"
    notes = str(request.get("status_notes") or "").strip()
    note = f"Closed at the platform of record: {notes}"[:2000] if notes else "Closed at the platform of record"
    try:
        cases.apply_action(ctx, case_id=case.id, action=action, actor=SYSTEM, note=note, expected_version=case.version)
    except (StaleCase, LifecycleError):
        return "conflict"
    return "closed"


def _import(ctx: ServiceContext, remote_id: str, request: dict[str, Any]) -> str:
    try:
        lat, lon = float(request["lat"]), float(request["long"])
        category_code = str(request["service_code"])
    except (KeyError, TypeError, ValueError):
        return "rejected"
    now = ctx.clock.now()
    try:
        with transaction(ctx.sessions) as session:
            claim = session.exec(select(IntakeClaim).where(IntakeClaim.source == CaseSource.UPSTREAM.value,
                                                           IntakeClaim.source_ref == remote_id,
                                                           IntakeClaim.kind == "upstream")).first()
            if claim is not None:
                if claim.case_id is not None or (claim.lease_until and claim.lease_until > now):
                    return "unchanged"
                opened = session.exec(select(Case).where(Case.source == CaseSource.UPSTREAM.value,
                                                         Case.source_event_id == remote_id)).first()
                if opened is not None:
                    claim.case_id, claim.outcome, claim.lease_until = opened.id, "created", None
                    session.execute(sa.update(Case).where(Case.id == opened.id).values(external_id=remote_id))
                    return "unchanged"
                claim.lease_until = now + CLAIM_LEASE
            else:
                claim = IntakeClaim(source=CaseSource.UPSTREAM.value, source_ref=remote_id, kind="upstream",
                                    lease_until=now + CLAIM_LEASE, created_at=now)
            session.add(claim)
    except IntegrityError:
        return "unchanged"  # a concurrent push or poll of the same request is importing it
    description = str(request.get("description") or "")[:4000]
    address = request.get("address")
    try:
        case = cases.report_case(ctx, actor=SYSTEM, source=CaseSource.UPSTREAM, category_code=category_code,
                                 lat=lat, lon=lon, description=description,
                                 address=str(address)[:500] if address else None, source_event_id=remote_id)
    except (UnknownCategory, OutsideGrid) as exc:
        log.warning("upstream request %s not imported: %s", remote_id, exc)
        with transaction(ctx.sessions) as session:
            session.execute(sa.delete(IntakeClaim).where(IntakeClaim.source == CaseSource.UPSTREAM.value,
                                                         IntakeClaim.source_ref == remote_id,
                                                         IntakeClaim.kind == "upstream"))
        return "rejected"
    media = request.get("media_url")
    with transaction(ctx.sessions) as session:
        values: dict[str, Any] = {"external_id": remote_id}
        if media:
            values["media_urls"] = [str(media)[:2000]]
        session.execute(sa.update(Case).where(Case.id == case.id).values(**values))
        session.execute(sa.update(IntakeClaim).where(
            IntakeClaim.source == CaseSource.UPSTREAM.value, IntakeClaim.source_ref == remote_id,
            IntakeClaim.kind == "upstream").values(case_id=case.id, outcome="created", lease_until=None))
    return "imported"


_NUMERIC_FIELDS = frozenset({"lat", "long"})


def requests_from_xml(data: bytes | str) -> list[dict[str, Any]]:
    """Open311 ``<service_requests>`` XML as the JSON shape (empty elements → None, lat/long → numbers).

    Parsed with defusedxml: entity expansion, external entities and DTDs are refused (ValueError).
    """
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        raise ValueError(f"unsafe or malformed XML: {type(exc).__name__}") from None
    out = []
    for request in root.findall("request"):
        item: dict[str, Any] = {}
        for child in request:
            text = child.text.strip() if child.text and child.text.strip() else None
            if text is not None and child.tag in _NUMERIC_FIELDS:
                try:
                    item[child.tag] = float(text)
                except ValueError:
                    item[child.tag] = None
            elif text is not None and text in ("true", "false") and child.tag.startswith("onegrid_"):
                item[child.tag] = text == "true"
            else:
                item[child.tag] = text
        out.append(item)
    return out


def _cursor(ctx: ServiceContext) -> str | None:
    with ctx.sessions() as session:
        row = session.get(SyncCursor, POLL_FEED)
        return row.value if row else None


def _save_cursor(ctx: ServiceContext, value: str) -> None:
    with transaction(ctx.sessions) as session:
        row = session.get(SyncCursor, POLL_FEED) or SyncCursor(name=POLL_FEED, value=value)
        row.value, row.updated_at = value, ctx.clock.now()
        session.add(row)


async def poll_upstream_once(ctx: ServiceContext, client: httpx.AsyncClient, *, base_url: str,
                             api_key: str | None) -> dict[str, int]:
    """Read the upstream's Open311 requests.json updated since the cursor and apply each; returns counts.

    The cursor (the latest `updated_datetime` applied) moves only after the requests up to it were
    applied, so a crash re-reads rather than skips. Raises httpx errors for the caller to retry.
    """
    params: dict[str, str] = {"extensions": "true"}
    cursor = await asyncio.to_thread(_cursor, ctx)
    if cursor:
        params["updated_after"] = cursor
    if api_key:
        params["api_key"] = api_key
    response = await client.get(f"{base_url.rstrip('/')}/open311/v2/requests.json", params=params)
    response.raise_for_status()
    if "xml" in response.headers.get("content-type", ""):
        requests = requests_from_xml(response.content)
    else:
        requests = response.json()
    if not isinstance(requests, list):
        raise ValueError("requests.json did not answer a list")
    requests.sort(key=lambda r: str(r.get("updated_datetime") or r.get("requested_datetime") or ""))
    counts: dict[str, int] = {}
    latest = cursor
    for request in requests:
        if not isinstance(request, dict):
            continue
        outcome = await asyncio.to_thread(apply_upstream_request, ctx, request=request)
        counts[outcome] = counts.get(outcome, 0) + 1
        stamp = request.get("updated_datetime") or request.get("requested_datetime")
        if stamp and (latest is None or _parse_time(stamp) >= _parse_time(latest)):
            latest = str(stamp)
    if latest and latest != cursor:
        await asyncio.to_thread(_save_cursor, ctx, latest)
    return counts


__all__ = [
    "BadSignature",
    "Diverged",
    "NotVisible",
    "OutOfOrder",
    "RelayStats",
    "SyncRefused",
    "UpstreamRelay",
    "apply_downstream_event",
    "apply_upstream_request",
    "backoff",
    "build_event",
    "dead_letters",
    "make_client",
    "outbox_health",
    "poll_upstream_once",
    "requests_from_xml",
    "retry_dead_letters",
    "sign_push",
    "verify_push",
]
