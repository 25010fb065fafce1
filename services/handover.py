"""Off duty with held orders: hand them back now, or keep them for a grace period.

What callers may rely on:
- `release_held` takes every task a worker holds (ACCEPTED) back to dispatch within the caller's
  transaction: the task is withdrawn (`TaskAction.WITHDRAW`, the offer `OfferAction.WITHDRAW`, so the
  worker is not barred from it later), proof drafts are abandoned, the case goes back to DISPATCHED
  when no other department works on it (`Action.REASSIGN` by the SYSTEM, with a note; else an audit
  note), and the task is offered to the workers on duty (or waits and escalates as any task).
- `hold_for_grace` records that a worker went off duty keeping orders: at `release_at`
  (`settings.off_duty_grace_min` later) `release_due` gives them back to dispatch, tells the worker
  (`OrderWithdrawn`, OFF_DUTY) and the supervisors (`HeldOrdersReleased`); coming back on duty first
  (`cancel_grace`) keeps them.
- `release_due` is the scheduled job: each due row is claimed once (deleted in the transaction that
  releases its orders; `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two processes never release twice.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.field import HeldOrdersReleased
from models.events.work import OrderWithdrawn, RetractReason
from models.field import OffDutyHandover
from models.lifecycle import Actor, Role
from models.tables import Case, Person
from models.work import CaseTask, TaskStatus
from services import dispatch
from services.context import ServiceContext
from services.db import transaction
from services.task_release import take_back

BATCH = 100
SYSTEM = Actor(Role.SYSTEM)


def held_tasks(session: Session, worker_id: int) -> list[CaseTask]:
    return list(session.exec(select(CaseTask).where(
        CaseTask.assignee_id == worker_id, CaseTask.status == TaskStatus.ACCEPTED).order_by(CaseTask.id)).all())


def release_held(session: Session, ctx: ServiceContext, worker: Person, *, handed_back: bool) -> list[Case]:
    """Give every task `worker` holds back to dispatch (see the module docstring); returns their cases."""
    now = ctx.clock.now()
    released: list[Case] = []
    note = "off duty: handed back" if handed_back else "off duty: grace period over"
    for task in held_tasks(session, worker.id):
        case = take_back(session, ctx, task, worker_id=worker.id, actor=SYSTEM, note=note, now=now)
        if not handed_back:
            ctx.publish(session, OrderWithdrawn(case_id=case.id, case_number=case.number, worker_id=worker.id,
                                                reason=RetractReason.OFF_DUTY))
        dispatch.offer_task(session, ctx, case, task)
        dispatch.ensure_dispatched(session, ctx, case)
        if case not in released:
            released.append(case)
    return released


def announce(session: Session, ctx: ServiceContext, worker: Person, cases: list[Case], *, handed_back: bool) -> None:
    """Tell the supervisors which orders went back to dispatch (nothing when there were none)."""
    if cases:
        ctx.publish(session, HeldOrdersReleased(
            worker_id=worker.id, case_ids=tuple(c.id for c in cases), case_numbers=tuple(c.number for c in cases),
            handed_back=handed_back, grace_minutes=ctx.settings.off_duty_grace_min))


def hold_for_grace(session: Session, ctx: ServiceContext, worker: Person) -> None:
    """The worker keeps their held orders for `off_duty_grace_min` minutes from now."""
    now = ctx.clock.now()
    release_at = now + timedelta(minutes=ctx.settings.off_duty_grace_min)
    row = session.get(OffDutyHandover, worker.id)
    if row is None:
        row = OffDutyHandover(worker_id=worker.id)
    row.off_duty_at, row.release_at = now, release_at
    session.add(row)


def cancel_grace(session: Session, worker: Person) -> None:
    """Back on duty: the held orders stay theirs."""
    session.execute(sa.delete(OffDutyHandover).where(OffDutyHandover.worker_id == worker.id))


def release_due(ctx: ServiceContext, *, limit: int = BATCH) -> int:
    """The job: release the held orders of workers whose grace period is over; returns how many workers."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        due = (select(OffDutyHandover).where(OffDutyHandover.release_at <= now)
               .order_by(OffDutyHandover.release_at).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        rows = session.exec(due).all()
        for row in rows:
            worker = session.get(Person, row.worker_id)
            session.delete(row)
            if worker is None or worker.on_duty or not worker.active:
                continue  # back on duty (kept) or deactivated (deactivation took them back already)
            announce(session, ctx, worker, release_held(session, ctx, worker, handed_back=False), handed_back=False)
    if rows:
        ctx.on_notifications()
    return len(rows)
