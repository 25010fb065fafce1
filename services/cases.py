"""Case use cases: open a case and apply lifecycle actions, each in one transaction.

Every status change writes, in the same transaction: the case row (version bumped with a
conditional update, so concurrent changes lose cleanly), exactly one audit event, and an
outbox row for the upstream platform.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from models.events.resident import CaseStatusChanged
from models.lifecycle import Action, Actor, CaseFacts, Role, Status, Transition, open_case, transition
from models.tables import Case, CaseEvent, CaseSource, Category, OutboxItem, OutboxStatus
from services import dispatcher, followers, grouped_writes, reference, rows
from services.context import ServiceContext
from services.db import insert_now, transaction
from services.working_time import registration_deadlines

log = logging.getLogger(__name__)


class CaseError(Exception):
    """A refusal a user can be told about; nothing was written."""


class CaseNotFound(CaseError):
    pass


class UnknownCategory(CaseError):
    pass


class OutsideGrid(CaseError):
    """The point lies outside every grid of the map."""


class StaleCase(CaseError):
    """Someone else changed the case first (optimistic concurrency); reload and retry."""


def next_case_number(session: Session, *, prefix: str, now: datetime, timezone: str) -> str:
    """Allocate the next human case number for `now`'s day in the city's timezone, e.g. SH-20261121-000123.

    The upsert is atomic on SQLite and PostgreSQL, so two concurrent reports never share a number.
    Inside `numbers_reserved` the number comes from the block's reservation: no statement.
    """
    day = now.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")
    held = session.info.get(_RESERVED)
    if held is not None and held[0] is session.get_transaction() and held[1] == day and held[2] <= held[3]:
        value = held[2]
        held[2] += 1
    else:
        value = session.execute(_COUNTER_ADD, {"day": day, "count": 1}).scalar_one()
    return f"{prefix}-{day}-{value:06d}"


_RESERVED = "case_numbers"  # session.info: [transaction, day, next number, last number] (`numbers_reserved`)
_COUNTER_ADD = sa.text("INSERT INTO case_counter (day, value) VALUES (:day, :count) "
                       "ON CONFLICT (day) DO UPDATE SET value = case_counter.value + :count RETURNING value")
_COUNTER_SET = sa.text("UPDATE case_counter SET value = :value WHERE day = :day")


@contextmanager
def numbers_reserved(session: Session, ctx: ServiceContext, *, count: int, now: datetime) -> Iterator[None]:
    """Take up to `count` case numbers of `now`'s day in one statement, for the cases registered in this
    block (an intake batch); at its end the counter is set back to the last number used, so the numbers
    have no gaps. The counter's row is this transaction's from the first statement until it ends (a row
    lock on PostgreSQL, the write lock on SQLite), so nobody takes a number meanwhile. A block left by
    an exception gives nothing back: its transaction must roll back.
    """
    day = now.astimezone(ZoneInfo(ctx.timezone)).strftime("%Y%m%d")
    last = session.execute(_COUNTER_ADD, {"day": day, "count": count}).scalar_one()
    held = session.info[_RESERVED] = [session.get_transaction(), day, last - count + 1, last]
    try:
        yield
        if held[2] <= held[3]:  # some were not used (repeats folded into open cases)
            session.execute(_COUNTER_SET, {"day": day, "value": held[2] - 1})
    finally:
        session.info.pop(_RESERVED, None)


# The hot statements, built once: SQLAlchemy then reuses their compiled form and cache key. Built per call,
# `.values(**row)` and `.where(col == value)` coerce every value and hash the whole statement each time.
_CASES = Case.__table__
_CHANGE_STATUS = sa.update(_CASES).where(_CASES.c.id == sa.bindparam("case_id"),
                                         _CASES.c.version == sa.bindparam("seen_version"))
_INSERT_EVENTS = sa.insert(CaseEvent.__table__)
_INSERT_OUTBOX = sa.insert(OutboxItem.__table__)


def record(session: Session, case: Case, tr: Transition) -> None:
    """Write the audit event and the upstream outbox row of `tr` (no status change by itself)."""
    record_all(session, case, [tr])


def record_all(session: Session, case: Case, transitions: list[Transition]) -> None:
    """`record` for several transitions of one case: one INSERT of events and one of outbox rows."""
    rows = [audit_rows(case.id, case.number, tr) for tr in transitions]
    grouped_writes.write(session, _INSERT_EVENTS, [event for event, _ in rows])  # a batch's go in together
    if case.drill:
        return  # a drill is never relayed upstream: the platform of record has no drill flag
    grouped_writes.write(session, _INSERT_OUTBOX, [outbox for _, outbox in rows])


def audit_rows(case_id: int, number: str, tr: Transition) -> tuple[dict, dict]:
    """The `CaseEvent` and `OutboxItem` rows that record `tr` (for INSERTs of many cases at once)."""
    event = {"case_id": case_id, "actor_id": tr.actor.person_id, "actor_role": tr.actor.role.value,
             "action": tr.action.value, "from_status": tr.from_status.value if tr.from_status else None,
             "to_status": tr.to_status.value, "note": tr.note, "at": tr.at}
    outbox = {"case_id": case_id, "topic": f"case.{tr.action.value}", "status": OutboxStatus.PENDING.value,
              "attempts": 0, "next_attempt_at": tr.at, "created_at": tr.at,
              "payload": {"number": number, "action": tr.action.value,
                          "from": tr.from_status.value if tr.from_status else None, "to": tr.to_status.value,
                          "at": tr.at.isoformat(), "note": tr.note}}
    return event, outbox


def facts_of(case: Case) -> CaseFacts:
    return CaseFacts(
        status=Status(case.status),
        handler_id=case.handler_id,
        verifier_id=case.verifier_id,
        last_event_at=case.updated_at,
    )


def change_status(session: Session, ctx: ServiceContext, case: Case, tr: Transition) -> None:
    """Persist `tr` on `case` with a conditional update on its version, its audit event and outbox row.

    Publishes `CaseStatusChanged`; on closure each reachable follower also gets a 回访 question
    (`followers.request_feedback`). Raises `StaleCase` when another writer changed the case first.
    """
    values = {
        "status": tr.to_status.value,
        "handler_id": tr.facts.handler_id,
        "verifier_id": tr.facts.verifier_id,
        "updated_at": tr.at,
        "version": case.version + 1,
    }
    if tr.to_status is Status.CLOSED:
        values["closed_at"] = tr.at
    elif tr.to_status is Status.REWORK:
        values["closed_at"] = None
    row = {"case_id": case.id, "seen_version": case.version, **values}
    if not grouped_writes.write_checked(session, _CHANGE_STATUS, row, StaleCase(case.number)):
        if session.execute(_CHANGE_STATUS, row).rowcount != 1:
            raise StaleCase(case.number)
    # The row now holds exactly `values`: the object learns them without reading the row back.
    for key, value in values.items():
        set_committed_value(case, key, value)
    record(session, case, tr)
    ctx.publish(session, CaseStatusChanged(
        case_id=case.id, number=case.number, from_status=tr.from_status, to_status=tr.to_status, action=tr.action,
        actor_person_id=tr.actor.person_id, note=tr.note, at=tr.at))
    if tr.to_status is Status.CLOSED:
        followers.request_feedback(session, ctx, case, tr)


def report_case(
    ctx: ServiceContext,
    *,
    actor: Actor,
    source: CaseSource,
    category_code: str,
    lat: float,
    lon: float,
    description: str = "",
    address: str | None = None,
    source_event_id: str | None = None,
    before_dispatch: Callable[[Session, Case], None] | None = None,
    drill: bool = False,
) -> Case:
    """Open a case and register it (立案), and queue it for the dispatcher (services/dispatcher.py).

    Returns the stored case: REGISTERED when a dispatcher loop runs (it offers the case after this
    commit), or as the inline dispatch left it when none runs (`ctx.on_registered` is None).

    Refuses (nothing stored) an unknown or inactive category, or a point outside every grid.
    Deadlines are set from the category's SLA, counted from registration.
    `before_dispatch(session, case)` runs inside the transaction once the case is registered
    with its deadlines, before it is queued: rows it adds (photos, followers) commit with the case,
    and an exception it raises rolls everything back.
    """
    now = ctx.clock.now()
    grid_code = ctx.grid_map.lookup(lon, lat) if ctx.grid_map is not None else None
    if ctx.grid_map is not None and grid_code is None:
        raise OutsideGrid(f"{lat:.6f},{lon:.6f}")
    with transaction(ctx.sessions) as session:
        category = reference.category(session, category_code)
        if category is None or not category.active:
            raise UnknownCategory(category_code)
        case = register_in(session, ctx, actor=actor, source=source, category=category, grid_code=grid_code,
                           lat=lat, lon=lon, description=description, address=address,
                           source_event_id=source_event_id, now=now, drill=drill)
        if before_dispatch is not None:
            before_dispatch(session, case)
        dispatcher.enqueue(session, case_id=case.id, now=now)
    return registered(ctx, case)


def registered(ctx: ServiceContext, case: Case) -> Case:
    """After the commit that registered `case` (and queued it): wake the sender and the dispatcher.

    Returns the case to answer with: as registered when a dispatcher loop runs (it offers the case
    after this), or as the inline dispatch left it when none runs (`ctx.on_registered` is None).
    """
    # `case` on the log line (onegrid/logs.py); never the description or the reporter: personal data.
    log.info("case registered: %s from %s", case.category_code, getattr(case.source, "value", case.source),
             extra={"case": case.number})
    ctx.on_notifications()  # what the registering transaction queued goes out at once
    if ctx.on_registered is not None:
        ctx.on_registered()  # the dispatcher loop offers it; the answer does not wait for that
        return case
    dispatcher.dispatch_pending(ctx)  # no dispatcher loop (tests, the CLI): offer it now, after the commit
    with ctx.sessions() as session:
        fresh = session.get(Case, case.id)
        session.expunge(fresh)
    return fresh


def register_in(session: Session, ctx: ServiceContext, *, actor: Actor, source: CaseSource, category: Category,
                grid_code: str | None, lat: float, lon: float, description: str, address: str | None,
                source_event_id: str | None, now: datetime, media_urls: list[str] | None = None,
                drill: bool = False) -> Case:
    """Store a new case already registered, within `session`: REPORT then REGISTER, both judged by the
    lifecycle, both recorded (audit event and outbox row), in one INSERT of the case. A `drill` case
    gets no outbox rows (models/campaigns.py).

    Deadlines come from the category's SLA in working time of the grid's calendar
    (services/working_time.py), counted from registration; they also arm the escalation sweep.
    """
    opened = open_case(actor, at=now)
    registered = transition(opened.facts, Action.REGISTER, Actor(Role.SYSTEM), at=now)
    deadlines = registration_deadlines(session, ctx, category=category, grid_code=grid_code, now=now)
    values = dict(
        number=next_case_number(session, prefix=ctx.case_prefix, now=now, timezone=ctx.timezone),
        source=source.value, source_event_id=source_event_id, category_code=category.code,
        description=description, lat=lat, lon=lon, address=address, grid_code=grid_code,
        media_urls=list(media_urls or []), status=registered.to_status.value,
        reporter_id=actor.person_id,  # a resident, or the worker who found it on patrol
        report_count=1, created_at=now, updated_at=now, version=2,  # version: one bump per status change
        escalation_round=0, drill=drill, **deadlines,
    )
    # Core, not the unit of work: this is the hot path of every report (bench/profile_intake.py). In an
    # intake batch the INSERT waits for the batch's (services/grouped_writes.py); the case has its id at once.
    case = rows.new(Case, **values)
    insert_now(session, case)  # in the session from here as if it had been loaded: no SELECT, no flush
    record_all(session, case, [opened, registered])
    ctx.publish(session, CaseStatusChanged(
        case_id=case.id, number=case.number, from_status=registered.from_status, to_status=registered.to_status,
        action=registered.action, actor_person_id=registered.actor.person_id, note=None, at=now))
    return case


def apply_action(
    ctx: ServiceContext,
    *,
    case_id: int,
    action: Action,
    actor: Actor,
    note: str | None = None,
    expected_version: int | None = None,
) -> Case:
    """Apply one lifecycle action to a case; returns the updated case.

    Raises a lifecycle error (illegal action, wrong role, missing reason, self-verification),
    CaseNotFound, or StaleCase when `expected_version` (or a concurrent writer) disagrees.
    Nothing is written on any refusal.
    """
    with transaction(ctx.sessions) as session:
        case = session.get(Case, case_id)
        if case is None:
            raise CaseNotFound(str(case_id))
        if expected_version is not None and case.version != expected_version:
            raise StaleCase(case.number)
        tr = transition(facts_of(case), action, actor, at=event_time(ctx, case), note=note)
        change_status(session, ctx, case, tr)
    ctx.on_notifications()
    log.info("case %s by %s: now %s", action.value, actor.role.value, getattr(case.status, "value", case.status),
             extra={"case": case.number})
    return case


def apply_action_in(session: Session, ctx: ServiceContext, case: Case, *, action: Action, actor: Actor,
                    note: str | None = None) -> Transition:
    """`apply_action` inside the caller's transaction (dispatch during registration, a worker's accept).

    Same guarantees: lifecycle checks, a conditional update on `case.version` (StaleCase when another
    writer got there first), one audit event and one outbox row. It raises instead of writing; the
    caller's transaction decides what commits. `case` is refreshed.
    """
    tr = transition(facts_of(case), action, actor, at=event_time(ctx, case), note=note)
    change_status(session, ctx, case, tr)
    return tr


def event_time(ctx: ServiceContext, case: Case) -> datetime:
    """The time of the case's next event: now, but never before its last event.

    A wall clock stepped back (NTP, a VM restore, two hosts that disagree) would otherwise make the
    lifecycle refuse every action on the case until the clock caught up; the event is stamped with
    the last event's time instead, so the audit log stays in order and the press is still answered.
    """
    now = ctx.clock.now()
    return max(now, case.updated_at) if case.updated_at is not None else now


def case_timeline(ctx: ServiceContext, *, case_id: int) -> list[dict]:
    """The case's audit events, oldest first, as plain dicts."""
    with ctx.sessions() as session:
        rows = session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)).all()
        return [r.model_dump() for r in rows]


__all__ = [
    "CaseError",
    "CaseNotFound",
    "OutsideGrid",
    "StaleCase",
    "UnknownCategory",
    "apply_action",
    "apply_action_in",
    "audit_rows",
    "case_timeline",
    "change_status",
    "event_time",
    "next_case_number",
    "record",
    "report_case",
]
