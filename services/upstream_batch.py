"""Receiving a downstream OneGrid's events in batches: many events, one transaction, few statements.

What callers may rely on (the guarantees of `apply_downstream_event`, for many events at once):
- Each event gets one result, in the order given: ``accepted``; ``duplicate`` (applied before: its
  seq is at most the mirror's last one, so nothing changes); or ``rejected`` with a reason and
  whether sending it later may work (`retryable`).
- A case's events apply in batch order, each judged by the lifecycle. Once one is rejected, the
  case's later events in the batch are rejected as ``blocked`` and not applied; other cases go on.
- What is accepted commits in one transaction; on any error nothing is written, so the same batch
  sent again is safe and gives the same answers (what was accepted then comes back ``duplicate``).
- Statements do not grow with the batch: the mirrors are read (and locked on PostgreSQL) once,
  then one INSERT each of new cases, audit events, outbox rows and links, and one UPDATE each of
  changed cases and links (services/bulk.py). Status changes of mirrors that existed before the
  batch are published as `cases.change_status` does.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from models.api import SyncLink
from models.events.resident import CaseStatusChanged
from models.lifecycle import Action, Actor, CaseFacts, LifecycleError, Role, Status, Transition, open_case, transition
from models.tables import Case, CaseEvent, CaseSource, Category, OutboxItem
from services import cases, followers
from services.api_keys import Principal, area_subtree
from services.bulk import insert_many, update_many
from services.cases import StaleCase
from services.context import ServiceContext
from services.db import transaction
from services.upstream_mirror import SyncRefused, parse_time

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
RETRYABLE_REASONS = frozenset({"out_of_order", "diverged", "blocked"})
CONFLICT_TRIES = 3  # a concurrent batch about the same cases won: read again and judge again


class BatchConflict(SyncRefused):
    """Concurrent writers kept changing these cases; nothing was written. Send the batch again."""

    retryable = True


@dataclass(frozen=True)
class _Event:
    event_id: str | None
    origin: str
    number: str
    seq: int
    topic: str
    payload: dict[str, Any]
    snapshot: dict[str, Any]
    actor_role: str


@dataclass
class _Mirror:
    """One downstream case as this batch leaves it: the stored row (if any) plus what the batch adds."""

    origin: str
    number: str
    link_id: int | None = None
    case: Case | None = None
    last_seq: int = 0
    stored_seq: int = 0  # the link's last seq as read
    facts: CaseFacts | None = None
    new: dict[str, Any] | None = None  # the row of a mirror opened by this batch
    transitions: list[Transition] = field(default_factory=list)  # to record, in order
    repeated: tuple[int, list[str]] | None = None  # (report_count, media_urls) of its latest case.repeated
    blocked: bool = False
    answers: list[dict[str, Any]] = field(default_factory=list)  # results that name the case here

    @property
    def known(self) -> bool:
        return self.case is not None or self.new is not None


def _parse(event: Any) -> _Event:
    if not isinstance(event, dict):
        raise ValueError("an event must be a JSON object")
    origin = str(event.get("origin") or "")[:64]
    topic = str(event.get("topic") or "")
    seq = event.get("seq")
    snapshot = event.get("case") or {}
    payload = event.get("payload") or {}
    if not isinstance(snapshot, dict) or not isinstance(payload, dict):
        raise ValueError("case and payload must be JSON objects")
    number = str(snapshot.get("number") or payload.get("number") or "")[:64]
    if not origin or not number or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 \
            or not topic.startswith("case."):
        raise ValueError("an event needs origin, case number, topic case.* and seq ≥ 1")
    event_id = event.get("event_id")
    return _Event(str(event_id)[:255] if event_id is not None else None, origin, number, seq, topic, payload,
                  snapshot, str(event.get("actor_role") or "system"))


def _rejected(event_id: Any, reason: str, message: str) -> dict[str, Any]:
    return {"event_id": event_id, "status": REJECTED, "reason": reason, "message": message[:500],
            "retryable": reason in RETRYABLE_REASONS}


class _Judge:
    """Judges a batch event by event against the mirrors as the batch leaves them (nothing written yet)."""

    def __init__(self, session: Session, ctx: ServiceContext, principal: Principal,
                 mirrors: dict[tuple[str, str], _Mirror], categories: dict[str, Category]) -> None:
        self.session, self.ctx, self.principal = session, ctx, principal
        self.mirrors, self.categories = mirrors, categories
        self._areas: set[str] | None = None  # the key's area and all below it, read once per batch

    def in_scope(self, grid_code: str | None) -> bool:
        if self.principal.area_code is None:
            return True
        if self._areas is None:
            self._areas = set(self.session.execute(area_subtree(self.principal.area_code)).scalars())
        return grid_code in self._areas

    def judge(self, ev: _Event) -> dict[str, Any]:
        m = self.mirrors.setdefault((ev.origin, ev.number), _Mirror(ev.origin, ev.number))
        if m.blocked:
            return _rejected(ev.event_id, "blocked", f"{ev.number}: an earlier event of this case was rejected")
        try:
            status = self._apply(m, ev)
        except _Refusal as refusal:
            m.blocked = True
            return _rejected(ev.event_id, refusal.reason, str(refusal))
        answer = {"event_id": ev.event_id, "status": status, "case_status": m.facts.status.value}
        m.answers.append(answer)
        return answer

    def _apply(self, m: _Mirror, ev: _Event) -> str:
        if m.known:
            grid_code = m.case.grid_code if m.case is not None else m.new["grid_code"]
            if not self.in_scope(grid_code):
                raise _Refusal("not_visible", f"{ev.number}: the case lies outside the key's area")
            if ev.seq <= m.last_seq:
                return DUPLICATE
            if ev.seq != m.last_seq + 1:
                raise _Refusal("out_of_order", f"{ev.number}: expected event {m.last_seq + 1}, got {ev.seq}")
            self._change(m, ev)
        elif ev.topic != "case.report":
            raise _Refusal("out_of_order", f"{ev.number}: no mirror yet; its report must come first")
        else:
            self._open(m, ev)
        m.last_seq = ev.seq
        return ACCEPTED

    def _open(self, m: _Mirror, ev: _Event) -> None:
        snapshot = ev.snapshot
        try:
            lat, lon = float(snapshot["lat"]), float(snapshot["lon"])
            source = CaseSource(snapshot.get("source") or CaseSource.UPSTREAM)
            at = parse_time(ev.payload.get("at") or snapshot.get("created_at"))
            role = Role(ev.actor_role)
        except (KeyError, TypeError, ValueError) as exc:
            raise _Refusal("malformed_event", f"malformed case in event: {exc}") from None
        category_code = str(snapshot.get("category_code") or "")
        if category_code not in self.categories:
            raise _Refusal("unknown_category", f"unknown or inactive category {category_code!r}")
        grid_code = self.ctx.grid_map.lookup(lon, lat) if self.ctx.grid_map is not None else None
        if self.ctx.grid_map is not None and grid_code is None:
            raise _Refusal("outside_grid", "the point lies outside every grid of the map")
        if not self.in_scope(grid_code):
            raise _Refusal("not_visible", f"{ev.number}: the case lies outside the key's area")
        opened = open_case(Actor(role), at=at)
        m.new = {
            "source": source.value, "category_code": category_code,
            "description": str(snapshot.get("description") or "")[:4000], "lat": lat, "lon": lon,
            "address": str(snapshot["address"])[:500] if snapshot.get("address") else None,
            "media_urls": [str(u)[:2000] for u in (snapshot.get("media_urls") or [])][:20],
            # Counters start fresh: the origin's later `case.repeated` events bring them up to date in order.
            "grid_code": grid_code, "report_count": 1, "created_at": at,
        }
        m.transitions.append(opened)
        m.facts = opened.facts

    def _change(self, m: _Mirror, ev: _Event) -> None:
        if ev.topic == "case.repeated":
            count, media = m.repeated or ((m.case.report_count, list(m.case.media_urls or [])) if m.case is not None
                                          else (m.new["report_count"], m.new["media_urls"]))
            try:
                count = int(ev.payload.get("report_count") or count)
            except (TypeError, ValueError):
                raise _Refusal("malformed_event", "report_count must be a number") from None
            m.repeated = (count, [str(u)[:2000] for u in (ev.payload.get("media_urls") or media)][:20])
            return
        try:
            action, role, at = Action(ev.payload["action"]), Role(ev.actor_role), parse_time(ev.payload["at"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _Refusal("malformed_event", f"malformed event: {exc}") from None
        try:
            # The origin's people are not known here: the lifecycle judges the role, not the person.
            tr = transition(m.facts, action, Actor(role), at=at, note=ev.payload.get("note"))
        except LifecycleError as exc:
            raise _Refusal("diverged", f"{ev.number}: {exc}") from None
        m.transitions.append(tr)
        m.facts = tr.facts


class _Refusal(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def apply_downstream_batch(ctx: ServiceContext, *, principal: Principal, events: list[Any]) -> list[dict[str, Any]]:
    """Apply an ordered batch of a downstream OneGrid's events; one result per event, in order.

    A result is ``{"event_id", "status": accepted|duplicate|rejected, ...}``: accepted and duplicate
    ones carry ``service_request_id``, ``number`` and ``case_status`` (the case here after that
    event); rejected ones ``reason``, ``message`` and ``retryable``. Raises BatchConflict when
    concurrent writers kept winning (nothing written).
    """
    for _ in range(CONFLICT_TRIES):
        try:
            results = _apply_batch(ctx, principal, events)
        except (IntegrityError, StaleCase):
            continue  # another batch opened or changed one of these mirrors first: judge against its result
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001"):  # deadlock, serialization
                raise
            continue
        if any(r["status"] == ACCEPTED for r in results):
            ctx.on_notifications()
        return results
    raise BatchConflict("concurrent changes to the same cases; send the batch again")


def _apply_batch(ctx: ServiceContext, principal: Principal, events: list[Any]) -> list[dict[str, Any]]:
    parsed: list[_Event | ValueError] = []
    for event in events:
        try:
            parsed.append(_parse(event))
        except ValueError as exc:
            parsed.append(exc)
    with transaction(ctx.sessions) as session:
        mirrors = _load_mirrors(session, {(p.origin, p.number) for p in parsed if isinstance(p, _Event)})
        codes = {str(p.snapshot.get("category_code") or "") for p in parsed
                 if isinstance(p, _Event) and p.topic == "case.report"}
        categories = {c.code: c for c in session.exec(select(Category).where(Category.code.in_(codes),
                                                                             Category.active))} if codes else {}
        judge = _Judge(session, ctx, principal, mirrors, categories)
        results = []
        for i, p in enumerate(parsed):
            if isinstance(p, ValueError):
                event_id = events[i].get("event_id") if isinstance(events[i], dict) else None
                results.append(_rejected(event_id, "malformed_event", str(p)))
            else:
                results.append(judge.judge(p))
        _write(session, ctx, [m for m in mirrors.values() if m.known])
    return results


def _load_mirrors(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Mirror]:
    """The stored mirrors of `keys`, their links and cases locked (PostgreSQL) in id order."""
    if not keys:
        return {}
    by_origin: dict[str, list[str]] = defaultdict(list)
    for origin, number in keys:
        by_origin[origin].append(number)
    links = list(session.exec(
        select(SyncLink).where(sa.or_(*(sa.and_(SyncLink.origin == origin, SyncLink.origin_number.in_(numbers))
                                        for origin, numbers in by_origin.items())))
        .order_by(SyncLink.id).with_for_update()))
    found = {c.id: c for c in session.exec(select(Case).where(Case.id.in_([link.case_id for link in links]))
                                           .order_by(Case.id).with_for_update())} if links else {}
    mirrors = {}
    for link in links:
        case = found[link.case_id]
        mirrors[(link.origin, link.origin_number)] = _Mirror(link.origin, link.origin_number, link.id, case,
                                                             link.last_seq, link.last_seq, cases.facts_of(case))
    return mirrors


def _write(session: Session, ctx: ServiceContext, mirrors: list[_Mirror]) -> None:
    now = ctx.clock.now()
    opened = [m for m in mirrors if m.new is not None]
    _insert_cases(session, ctx, opened)
    changed = [m for m in mirrors if m.case is not None and (m.transitions or m.repeated)]
    _update_cases(session, changed)
    audit = [cases.audit_rows(_case_id(m), _number(m), tr) for m in mirrors for tr in m.transitions]
    insert_many(session, CaseEvent.__table__, [event for event, _ in audit])
    insert_many(session, OutboxItem.__table__, [outbox for _, outbox in audit])
    insert_many(session, SyncLink.__table__, [
        {"origin": m.origin, "origin_number": m.number, "case_id": m.new["id"], "api_key_id": None,
         "last_seq": m.last_seq, "updated_at": now} for m in opened])
    update_many(session, SyncLink.__table__, [{"id": m.link_id, "last_seq": m.last_seq, "updated_at": now}
                                              for m in mirrors if m.case is not None and m.last_seq > m.stored_seq],
                match=("id",))
    _publish(session, ctx, mirrors)
    for m in mirrors:
        for answer in m.answers:
            answer["service_request_id"], answer["number"] = str(_case_id(m)), _number(m)


def _case_id(m: _Mirror) -> int:
    return m.case.id if m.case is not None else m.new["id"]


def _number(m: _Mirror) -> str:
    return m.case.number if m.case is not None else m.new["number"]


def _closed_at(start: Any, transitions: list[Transition]) -> Any:
    closed_at = start
    for tr in transitions:
        if tr.to_status is Status.CLOSED:
            closed_at = tr.at
        elif tr.to_status is Status.REWORK:
            closed_at = None
    return closed_at


def _insert_cases(session: Session, ctx: ServiceContext, opened: list[_Mirror]) -> None:
    """Number and insert the mirrors opened by this batch: one counter upsert per day, one INSERT."""
    if not opened:
        return
    by_day: dict[str, list[_Mirror]] = defaultdict(list)
    for m in opened:
        by_day[m.new["created_at"].astimezone(ZoneInfo(ctx.timezone)).strftime("%Y%m%d")].append(m)
    for day, group in by_day.items():
        last = session.execute(sa.text(
            "INSERT INTO case_counter (day, value) VALUES (:day, :n) "
            "ON CONFLICT (day) DO UPDATE SET value = case_counter.value + :n RETURNING value"),
            {"day": day, "n": len(group)}).scalar_one()
        for offset, m in enumerate(group):
            m.new["number"] = f"{ctx.case_prefix}-{day}-{last - len(group) + 1 + offset:06d}"
    rows = []
    for m in opened:
        facts, changes = m.facts, m.transitions[1:]
        count, media = m.repeated or (m.new["report_count"], m.new["media_urls"])
        rows.append({**m.new, "report_count": count, "media_urls": media, "status": facts.status.value,
                     "handler_id": facts.handler_id, "verifier_id": facts.verifier_id,
                     "updated_at": facts.last_event_at, "closed_at": _closed_at(None, changes),
                     "version": 1 + len(changes)})
    ids = dict((number, case_id) for case_id, number in insert_many(session, Case.__table__, rows,
                                                                     returning=("id", "number")))
    for m in opened:
        m.new["id"] = ids[m.new["number"]]


def _update_cases(session: Session, changed: list[_Mirror]) -> None:
    """One UPDATE of the stored mirrors this batch changed, each conditional on its version."""
    if not changed:
        return
    rows = []
    for m in changed:
        case, facts = m.case, m.facts
        count, media = m.repeated or (case.report_count, list(case.media_urls or []))
        rows.append({"id": case.id, "version": case.version, "status": facts.status.value,
                     "handler_id": facts.handler_id, "verifier_id": facts.verifier_id,
                     "updated_at": facts.last_event_at if m.transitions else case.updated_at,
                     "closed_at": _closed_at(case.closed_at, m.transitions),
                     "report_count": count, "media_urls": media,
                     # The version goes up by one per status change; a repeat alone leaves it.
                     "new_version": case.version + len(m.transitions)})
    if update_many(session, Case.__table__, rows, match=("id", "version"),
                   renames={"new_version": "version"}) != len(rows):
        raise StaleCase("a mirrored case changed under the batch")


def _publish(session: Session, ctx: ServiceContext, mirrors: list[_Mirror]) -> None:
    """What `cases.change_status` publishes, for each status change of a mirror that existed before the batch.

    A mirror opened by this batch came into being in this transaction: nobody follows it yet, so
    its changes have no one to tell (the single-event path publishes them to no recipient).
    """
    for m in mirrors:
        if m.case is None:
            continue
        for tr in m.transitions:
            ctx.publish(session, CaseStatusChanged(
                case_id=_case_id(m), number=_number(m), from_status=tr.from_status, to_status=tr.to_status,
                action=tr.action, actor_person_id=tr.actor.person_id, note=tr.note, at=tr.at))
            if tr.to_status is Status.CLOSED:
                followers.request_feedback(session, ctx, session.get(Case, _case_id(m)), tr)
