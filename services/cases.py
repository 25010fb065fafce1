"""Case use cases: open a case and apply lifecycle actions, each in one transaction.

Every status change writes, in the same transaction: the case row (version bumped with a
conditional update, so concurrent changes lose cleanly), exactly one audit event, and an
outbox row for the upstream platform.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.resident import CaseStatusChanged
from models.lifecycle import Action, Actor, CaseFacts, Role, Status, Transition, open_case, transition
from models.tables import Case, CaseEvent, CaseSource, Category, OutboxItem
from services import dispatch, followers
from services.context import ServiceContext
from services.db import transaction
from services.working_time import registration_deadlines


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
    """
    day = now.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")
    value = session.execute(
        sa.text(
            "INSERT INTO case_counter (day, value) VALUES (:day, 1) "
            "ON CONFLICT (day) DO UPDATE SET value = case_counter.value + 1 RETURNING value"
        ),
        {"day": day},
    ).scalar_one()
    return f"{prefix}-{day}-{value:06d}"


def record(session: Session, case: Case, tr: Transition) -> None:
    """Write the audit event and the upstream outbox row of `tr` (no status change by itself)."""
    session.add(
        CaseEvent(
            case_id=case.id,
            actor_id=tr.actor.person_id,
            actor_role=tr.actor.role,
            action=tr.action,
            from_status=tr.from_status,
            to_status=tr.to_status,
            note=tr.note,
            at=tr.at,
        )
    )
    session.add(
        OutboxItem(
            case_id=case.id,
            topic=f"case.{tr.action.value}",
            payload={
                "number": case.number,
                "action": tr.action.value,
                "from": tr.from_status.value if tr.from_status else None,
                "to": tr.to_status.value,
                "at": tr.at.isoformat(),
                "note": tr.note,
            },
            next_attempt_at=tr.at,
            created_at=tr.at,
        )
    )


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
    result = session.execute(
        sa.update(Case).where(Case.id == case.id, Case.version == case.version).values(**values)
    )
    if result.rowcount != 1:
        raise StaleCase(case.number)
    session.expire(case)
    record(session, case, tr)
    session.refresh(case)
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
) -> Case:
    """Open a case and register it (立案). Returns the stored case, status REGISTERED.

    Refuses (nothing stored) an unknown or inactive category, or a point outside every grid.
    Deadlines are set from the category's SLA, counted from registration.
    `before_dispatch(session, case)` runs inside the transaction once the case is registered
    with its deadlines, before dispatch: rows it adds (photos, followers) commit with the case,
    and an exception it raises rolls everything back.
    """
    now = ctx.clock.now()
    grid_code = ctx.grid_map.lookup(lon, lat) if ctx.grid_map is not None else None
    if ctx.grid_map is not None and grid_code is None:
        raise OutsideGrid(f"{lat:.6f},{lon:.6f}")
    with transaction(ctx.sessions) as session:
        category = session.exec(select(Category).where(Category.code == category_code)).first()
        if category is None or not category.active:
            raise UnknownCategory(category_code)
        case = Case(
            number=next_case_number(session, prefix=ctx.case_prefix, now=now, timezone=ctx.timezone),
            source=source,
            source_event_id=source_event_id,
            category_code=category.code,
            description=description,
            lat=lat,
            lon=lon,
            address=address,
            grid_code=grid_code,
            status=Status.REPORTED,
            reporter_id=actor.person_id,  # a resident, or the worker who found it on patrol
            created_at=now,
            updated_at=now,
        )
        session.add(case)
        session.flush()
        record(session, case, open_case(actor, at=now))
        registered = transition(facts_of(case), Action.REGISTER, Actor(Role.SYSTEM), at=now)
        change_status(session, ctx, case, registered)
        # Working time of the grid's calendar (services/working_time.py; without a grid, the city's default
        # hours and holidays); this also arms the escalation sweep.
        deadlines = registration_deadlines(session, ctx, category=category, grid_code=grid_code, now=now)
        session.execute(sa.update(Case).where(Case.id == case.id).values(**deadlines))
        session.refresh(case)
        if before_dispatch is not None:
            before_dispatch(session, case)
        dispatch.dispatch_new_case(session, ctx, case)
        session.refresh(case)
    ctx.on_notifications()  # after the commit: wake the sender for what this change queued
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
    "case_timeline",
    "change_status",
    "event_time",
    "next_case_number",
    "record",
    "report_case",
]
