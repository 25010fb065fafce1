"""Work goes back to the workers who did it (返工) after a reopen or an office's rejection.

What callers may rely on: after `back_to_workers` every task the case's proof closed (DONE) is held again
by the worker who did it, when they are still an active worker; a task whose worker is gone is offered
afresh (or waits, escalated). The workers who hold it again are told why (`ReworkOrdered`), so a case in
rework always has somebody on it and its holder's Complete is accepted.
"""

from __future__ import annotations

from sqlmodel import Session, select

from models.events.case_actions import ReworkOrdered
from models.lifecycle import Role
from models.tables import Case, Person
from models.work import CaseTask, TaskStatus
from models.work_lifecycles import TASKS, TaskAction
from services import dispatch
from services.context import ServiceContext


def back_to_workers(session: Session, ctx: ServiceContext, case: Case, *, reason: str,
                    card_ids: tuple[int, ...] = ()) -> tuple[int, ...]:
    """Give each DONE task of `case` back to its worker (see the module docstring); returns who holds one."""
    now = ctx.clock.now()
    holders: list[int] = []
    for task in session.exec(select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.status == TaskStatus.DONE)
                             .order_by(CaseTask.id)).all():
        worker = session.get(Person, task.assignee_id) if task.assignee_id else None
        task.status = TASKS.step(TaskStatus(task.status), TaskAction.REWORK)
        task.done_at, task.updated_at = None, now
        task.version += 1
        if worker is not None and worker.active and (worker.has_role(Role.WORKER) or worker.has_role(Role.SUPERVISOR)):
            if worker.id not in holders:
                holders.append(worker.id)
        else:  # the worker who did it is gone: the task is offered afresh
            task.status = TASKS.step(TaskStatus(task.status), TaskAction.WITHDRAW)
            task.assignee_id, task.accepted_at = None, None
            session.add(task)
            session.flush()
            dispatch.offer_task(session, ctx, case, task)
        session.add(task)
    session.flush()
    ctx.publish(session, ReworkOrdered(case_id=case.id, case_number=case.number, worker_ids=tuple(holders),
                                       reason=reason, card_ids=card_ids))
    return tuple(holders)
