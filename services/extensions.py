"""Extensions (延期) and shelving (挂账): the two ways a deadline moves.

What callers may rely on:
- `request_extension`: the worker holding the case asks for working time with a reason (lifecycle
  REQUEST_EXTENSION; `ExtensionRequested`: the grid's supervisors get a card with Grant / Refuse).
- `grant_extension`: moves the handling deadline by the granted working time (from the old deadline,
  or from now if that has passed), starts a new escalation round, records an `Extension` (it counts
  in the extension rate). With a pending request it is GRANT_EXTENSION; without one (from a ping)
  the supervisor extends directly and an audit event says so (`ExtensionGranted`).
- `refuse_extension`: REFUSE_EXTENSION with a reason; the deadline stays (`ExtensionRefused`).
- `shelve`: SHELVE with a reason and a review date; the clock stops (the working minutes left are
  kept), offers are withdrawn, the sweep pings on the review date (`CaseShelved`). `unshelve`:
  UNSHELVE, the deadlines restart with the time that was left, the case is offered again (`CaseUnshelved`).
Each is one transaction, checks the supervisor's area, and refuses with nothing written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.supervision import (
    CaseShelved,
    CaseUnshelved,
    ExtensionGranted,
    ExtensionRefused,
    ExtensionRequested,
)
from models.events.work import RetractReason
from models.lifecycle import Action, Actor, Role, Status
from models.supervision import Extension, ExtensionStatus, Shelving
from models.tables import Case
from models.work import CaseTask, TaskStatus
from models.work_lifecycles import TASKS, TaskAction
from services import dispatch
from services.cases import CaseNotFound, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.supervision_access import NotNow, supervisor_and_case
from services.takeover import free_task
from services.work import note_event
from services.working_time import area_codes_of, calendar_of

MAX_REASON = 500
MAX_EXTENSION_MINUTES = 480 * 20


class ExtensionError(Exception):
    pass


class NotYourCase(ExtensionError):
    pass


class ReasonRequired(ExtensionError):
    pass


class BadDuration(ExtensionError):
    pass


class AlreadyPending(ExtensionError):
    pass


def _reason(text: str | None) -> str:
    note = " ".join((text or "").split())[:MAX_REASON]
    if not note:
        raise ReasonRequired()
    return note


def _minutes(minutes: int) -> int:
    if not 1 <= minutes <= MAX_EXTENSION_MINUTES:
        raise BadDuration(str(minutes))
    return minutes


def find_case(ctx: ServiceContext, *, number: str) -> int | None:
    with ctx.sessions() as session:
        return session.exec(select(Case.id).where(Case.number == number.strip().upper())).first()


def request_extension(ctx: ServiceContext, *, case_id: int, worker_id: int, reason: str, minutes: int) -> str:
    """The holder of an in-progress case asks for `minutes` more working time. Returns the case number."""
    note, minutes = _reason(reason), _minutes(minutes)
    with transaction(ctx.sessions) as session:
        case = session.get(Case, case_id)
        if case is None:
            raise CaseNotFound(str(case_id))
        holds = session.exec(select(CaseTask.id).where(CaseTask.case_id == case.id, CaseTask.assignee_id == worker_id,
                                                       CaseTask.status == TaskStatus.ACCEPTED)).first()
        if holds is None and case.handler_id != worker_id:
            raise NotYourCase(case.number)
        if Status(case.status) is Status.EXTENSION_REQUESTED:
            raise AlreadyPending(case.number)
        if Status(case.status) is not Status.IN_PROGRESS:
            raise NotNow(case.number, case.status)
        now = ctx.clock.now()
        apply_action_in(session, ctx, case, action=Action.REQUEST_EXTENSION, actor=Actor(Role.WORKER, worker_id),
                        note=note)
        session.add(Extension(case_id=case.id, requested_by_id=worker_id, reason=note, working_minutes=minutes,
                              status=ExtensionStatus.PENDING, requested_at=now, old_due_at=case.handle_due_at))
        ctx.publish(session, ExtensionRequested(case_id=case.id, case_number=case.number, worker_id=worker_id,
                                                minutes=minutes, reason=note))
        number = case.number
    ctx.on_notifications()
    return number


def pending_extension(session: Session, case_id: int) -> Extension | None:
    return session.exec(select(Extension).where(Extension.case_id == case_id,
                                                Extension.status == ExtensionStatus.PENDING)
                        .order_by(Extension.id.desc())).first()


def has_pending(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> bool:
    with ctx.sessions() as session:
        supervisor_and_case(session, supervisor_id, case_id)
        return pending_extension(session, case_id) is not None


def _restart_clock(session: Session, case: Case, **deadlines: datetime | None) -> None:
    values = {k: v for k, v in deadlines.items()}
    dues = [v for v in values.values() if v is not None]
    session.execute(sa.update(Case).where(Case.id == case.id).values(
        **values, escalation_round=case.escalation_round + 1, next_escalation_at=min(dues) if dues else None))
    session.refresh(case)


def grant_extension(ctx: ServiceContext, *, case_id: int, supervisor_id: int, minutes: int | None = None) -> datetime:
    """Grant (a pending request, or directly) more working time; returns the new handling deadline."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        status = Status(case.status)
        pending = pending_extension(session, case.id)
        minutes = _minutes(minutes or (pending.working_minutes if pending else 480))
        now = ctx.clock.now()
        actor = Actor(Role.SUPERVISOR, supervisor.id)
        if status is Status.EXTENSION_REQUESTED:
            apply_action_in(session, ctx, case, action=Action.GRANT_EXTENSION, actor=actor)
        elif status in (Status.REGISTERED, Status.DISPATCHED, Status.RETURNED, Status.IN_PROGRESS, Status.REWORK):
            note_event(session, ctx, case, Action.GRANT_EXTENSION, actor, f"+{minutes} working minutes")
        else:
            raise NotNow(case.number, case.status)
        cal = calendar_of(ctx)
        codes = area_codes_of(session, case.grid_code)
        old = case.handle_due_at
        new_due = cal.add(max(old, now) if old else now, minutes, "minutes", codes)
        accept = case.accept_due_at
        if status in (Status.REGISTERED, Status.DISPATCHED, Status.RETURNED) and accept is not None:
            accept = cal.add(max(accept, now), minutes, "minutes", codes)
        _restart_clock(session, case, accept_due_at=accept, handle_due_at=new_due)
        if pending is not None:
            pending.status, pending.decided_by_id, pending.decided_at = ExtensionStatus.GRANTED, supervisor.id, now
            pending.working_minutes, pending.new_due_at = minutes, new_due
            session.add(pending)
            requester = pending.requested_by_id
        else:
            session.add(Extension(case_id=case.id, requested_by_id=supervisor.id, reason="granted from a ping",
                                  working_minutes=minutes, status=ExtensionStatus.GRANTED, requested_at=now,
                                  decided_by_id=supervisor.id, decided_at=now, old_due_at=old, new_due_at=new_due))
            requester = case.handler_id
        ctx.publish(session, ExtensionGranted(case_id=case.id, case_number=case.number, supervisor_id=supervisor.id,
                                              requester_id=requester, minutes=minutes, new_due_at=new_due))
    ctx.on_notifications()
    return new_due


def refuse_extension(ctx: ServiceContext, *, case_id: int, supervisor_id: int, reason: str) -> str:
    note = _reason(reason)
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        pending = pending_extension(session, case.id)
        if Status(case.status) is not Status.EXTENSION_REQUESTED or pending is None:
            raise NotNow(case.number, case.status)
        apply_action_in(session, ctx, case, action=Action.REFUSE_EXTENSION,
                        actor=Actor(Role.SUPERVISOR, supervisor.id), note=note)
        pending.status, pending.decided_by_id, pending.decided_at = ExtensionStatus.REFUSED, supervisor.id, \
            ctx.clock.now()
        pending.decision_note = note
        session.add(pending)
        ctx.publish(session, ExtensionRefused(case_id=case.id, case_number=case.number, supervisor_id=supervisor.id,
                                              requester_id=pending.requested_by_id, reason=note,
                                              due_at=case.handle_due_at))
        number = case.number
    ctx.on_notifications()
    return number


def shelve(ctx: ServiceContext, *, case_id: int, supervisor_id: int, reason: str, review_at: datetime) -> str:
    """Put the case on hold: the clock stops until `unshelve`; the sweep pings on `review_at`."""
    note = _reason(reason)
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) not in (Status.REGISTERED, Status.DISPATCHED, Status.RETURNED, Status.IN_PROGRESS):
            raise NotNow(case.number, case.status)
        shelve_in(session, ctx, case, actor=Actor(Role.SUPERVISOR, supervisor.id), note=note, review_at=review_at)
        number = case.number
    ctx.on_notifications()
    return number


def shelve_in(session: Session, ctx: ServiceContext, case: Case, *, actor: Actor, note: str,
              review_at: datetime) -> None:
    """`shelve` inside the caller's transaction, by any actor the lifecycle allows (a supervisor, an API key):
    whoever has the case's tasks is told and lets go, the working time left is kept."""
    now = ctx.clock.now()
    if review_at <= now:
        raise BadDuration("review date in the past")
    cal = calendar_of(ctx)
    codes = area_codes_of(session, case.grid_code)
    accept_left = cal.minutes_between(now, case.accept_due_at, codes) if case.accept_due_at else None
    handle_left = cal.minutes_between(now, case.handle_due_at, codes) if case.handle_due_at else None
    apply_action_in(session, ctx, case, action=Action.SHELVE, actor=actor, note=note)
    for task in session.exec(select(CaseTask).where(
            CaseTask.case_id == case.id,
            CaseTask.status.in_([TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED]))).all():
        free_task(session, ctx, case, task, RetractReason.SHELVED)
        task.status = TASKS.step(TaskStatus(task.status), TaskAction.SHELVE)
        session.add(task)
    session.flush()
    session.add(Shelving(case_id=case.id, shelved_by_id=actor.person_id, reason=note, review_at=review_at,
                         shelved_at=now, accept_left_minutes=accept_left, handle_left_minutes=handle_left))
    session.execute(sa.update(Case).where(Case.id == case.id).values(next_escalation_at=review_at,
                                                                      assignee_id=None))
    ctx.publish(session, CaseShelved(case_id=case.id, case_number=case.number, supervisor_id=actor.person_id,
                                     reason=note, review_at=review_at))


def unshelve(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> str:
    """Take the case off the shelf: deadlines restart with the working time that was left; it is offered again."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) is not Status.SHELVED:
            raise NotNow(case.number, case.status)
        unshelve_in(session, ctx, case, actor=Actor(Role.SUPERVISOR, supervisor.id))
        number = case.number
    ctx.on_notifications()
    return number


def unshelve_in(session: Session, ctx: ServiceContext, case: Case, *, actor: Actor) -> None:
    """`unshelve` inside the caller's transaction, by any actor the lifecycle allows."""
    shelf = session.exec(select(Shelving).where(Shelving.case_id == case.id, Shelving.unshelved_at.is_(None))
                         .order_by(Shelving.id.desc())).first()
    now = ctx.clock.now()
    apply_action_in(session, ctx, case, action=Action.UNSHELVE, actor=actor)
    cal = calendar_of(ctx)
    codes = area_codes_of(session, case.grid_code)
    accept_left = shelf.accept_left_minutes if shelf else 0
    handle_left = shelf.handle_left_minutes if shelf else 0
    _restart_clock(session, case, accept_due_at=cal.add(now, accept_left or 0, "minutes", codes),
                   handle_due_at=cal.add(now, handle_left or 0, "minutes", codes))
    if shelf is not None:
        shelf.unshelved_at, shelf.unshelved_by_id = now, actor.person_id
        session.add(shelf)
    for task in session.exec(select(CaseTask).where(CaseTask.case_id == case.id,
                                                    CaseTask.status == TaskStatus.WAITING)).all():
        dispatch.offer_task(session, ctx, case, task)
    dispatch.ensure_dispatched(session, ctx, case)
    ctx.publish(session, CaseUnshelved(case_id=case.id, case_number=case.number, supervisor_id=actor.person_id))


def review_date(ctx: ServiceContext, days: int) -> datetime:
    return ctx.clock.now() + timedelta(days=days)
