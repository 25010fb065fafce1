"""A supervisor moves a late case: reassign it to one worker of the grid, or take it over themself.

What callers may rely on:
- `reassign` offers the case's task(s) of the worker's department to that worker alone; whoever had
  them on offer or held them is told (OfferRetracted / OrderWithdrawn), the case is back in DISPATCHED.
- `take_over` makes the supervisor hold every open task and the case's handler, so someone else
  verifies it; `CaseTakenOver` tells them how to finish it.
- `free_task` (also used by shelving) takes a task back from whoever has it.
Each is one transaction, checks the supervisor's area, and refuses with nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.supervision import CaseReassigned, CaseTakenOver
from models.events.work import OrderWithdrawn, RetractReason
from models.lifecycle import Action, Actor, Role, Status
from models.supervision import EscalationStep
from models.tables import Case, Person, is_reachable
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OFFERS, TASKS, OfferAction, TaskAction
from services import dispatch
from services.cases import apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.supervision_access import NotAGridWorker, NotNow, WrongDepartment, supervisor_and_case
from services.work import abandon_drafts

MOVABLE = frozenset({Status.REGISTERED, Status.DISPATCHED, Status.RETURNED, Status.IN_PROGRESS, Status.REWORK})
_OPEN_TASK = (TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED)


@dataclass(frozen=True)
class GridWorker:
    person_id: int
    name: str
    department_code: str | None
    on_duty: bool


def grid_workers(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> list[GridWorker]:
    """Active workers of the case's grid who could take it (its departments), on duty first."""
    with ctx.sessions() as session:
        _sup, case = supervisor_and_case(session, supervisor_id, case_id)
        departments = set(session.exec(select(CaseTask.department_code).where(CaseTask.case_id == case.id)).all())
        people = session.exec(select(Person).where(Person.area_code == case.grid_code, Person.active.is_(True),
                                                   Person.deleted_at.is_(None)).order_by(Person.id)).all()
        out = [GridWorker(p.id, p.display_name, p.department_code, p.on_duty) for p in people
               if p.has_role(Role.WORKER) and (not departments or p.department_code in departments)]
        out.sort(key=lambda w: (not w.on_duty, w.name))
        return out


def free_task(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, reason: RetractReason) -> None:
    """Take `task` back from whoever has it on offer or holds it; they are told why (`reason`)."""
    now = ctx.clock.now()
    for offer in dispatch.open_offers(session, task.id):
        dispatch.retract_offer(session, ctx, offer, action=OfferAction.WITHDRAW, reason=reason)
    if task.status == TaskStatus.ACCEPTED and task.assignee_id is not None:
        previous = session.get(Person, task.assignee_id)
        withdrawn = OFFERS.step(OfferStatus.ACCEPTED, OfferAction.WITHDRAW)  # only the holder's accepted offer
        session.execute(sa.update(WorkOffer).where(
            WorkOffer.task_id == task.id, WorkOffer.worker_id == task.assignee_id,
            WorkOffer.status == OfferStatus.ACCEPTED).values(status=withdrawn, closed_at=now))
        abandon_drafts(session, task.id, task.assignee_id, now)
        if previous is not None:
            ctx.publish(session, OrderWithdrawn(case_id=case.id, case_number=case.number, worker_id=previous.id,
                                                reason=reason))
    task.assignee_id, task.accepted_at, task.updated_at = None, None, now
    task.version += 1


def _unaccept(session: Session, ctx: ServiceContext, case: Case, actor: Actor, note: str) -> None:
    """Bring the case to DISPATCHED (registered/returned: dispatch; in progress/rework: reassign)."""
    status = Status(case.status)
    if status in (Status.REGISTERED, Status.RETURNED):
        apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=actor, note=note)
    elif status in (Status.IN_PROGRESS, Status.REWORK, Status.DISPATCHED):
        apply_action_in(session, ctx, case, action=Action.REASSIGN, actor=actor, note=note)


def reassign(ctx: ServiceContext, *, case_id: int, supervisor_id: int, worker_id: int) -> str:
    """Offer the case's task(s) of the worker's department to that worker of the grid alone; whoever had
    them is told. The worker accepts as with any order. Returns the case number."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) not in MOVABLE:
            raise NotNow(case.number, case.status)
        worker = session.get(Person, worker_id)
        if (worker is None or not worker.has_role(Role.WORKER) or not worker.active
                or worker.area_code != case.grid_code or not is_reachable(worker)):
            raise NotAGridWorker(str(worker_id))
        tasks = session.exec(select(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.department_code == worker.department_code,
            CaseTask.status.in_(_OPEN_TASK))).all()
        if not tasks:
            raise WrongDepartment(case.number)
        actor = Actor(Role.SUPERVISOR, supervisor.id)
        for task in tasks:
            free_task(session, ctx, case, task, RetractReason.REASSIGNED)
            task.status = TASKS.step(TaskStatus(task.status), TaskAction.REASSIGN)
            session.add(task)
            session.flush()
            dispatch.offer_to_worker(session, ctx, case, task, worker)
        _unaccept(session, ctx, case, actor, f"reassigned to {worker.display_name}"[:200])
        session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None))
        ctx.publish(session, CaseReassigned(case_id=case.id, case_number=case.number, supervisor_id=supervisor.id,
                                            worker_id=worker.id, task_ids=tuple(t.id for t in tasks)))
        number = case.number
    ctx.on_notifications()
    return number


def take_over(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> str:
    """The supervisor takes the case on themself: they hold its tasks and become its handler, so someone
    else verifies it. They finish it with proof as a worker does (services/work.py lets a supervisor
    complete only the tasks they hold)."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) not in MOVABLE:
            raise NotNow(case.number, case.status)
        actor = Actor(Role.SUPERVISOR, supervisor.id)
        now = ctx.clock.now()
        tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case.id,
                                                    CaseTask.status.in_(_OPEN_TASK))).all()
        for task in tasks:
            free_task(session, ctx, case, task, RetractReason.TAKEN_OVER)
            task.status = TASKS.step(TaskStatus(task.status), TaskAction.TAKE_OVER)
            task.assignee_id, task.accepted_at = supervisor.id, now
            session.add(task)
        session.flush()
        if Status(case.status) is not Status.REWORK:
            _unaccept(session, ctx, case, actor, "taken over by the supervisor")
        apply_action_in(session, ctx, case, action=Action.ACCEPT, actor=actor)
        session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=supervisor.id))
        session.execute(sa.update(EscalationStep).where(
            EscalationStep.case_id == case.id, EscalationStep.acknowledged_at.is_(None)).values(
            acknowledged_at=now, acknowledged_by_id=supervisor.id, next_repeat_at=None))
        ctx.publish(session, CaseTakenOver(case_id=case.id, case_number=case.number, supervisor_id=supervisor.id,
                                           task_ids=tuple(t.id for t in tasks)))
        number = case.number
    ctx.on_notifications()
    return number
