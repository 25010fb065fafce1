"""Taking a held work order back from its worker, for whatever reason (off duty, deactivated).

`take_back` withdraws the task and the worker's accepted offer through their lifecycles, abandons the
worker's proof drafts, and puts the case back to dispatched (`Action.REASSIGN`) when no other task of it
is held or done; otherwise the reason is only noted on the case. Offering the task again is the caller's.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Action, Actor, Status
from models.tables import Case
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OFFERS, TASKS, OfferAction, TaskAction
from services.cases import apply_action_in
from services.context import ServiceContext
from services.work_common import abandon_drafts, note_event


def take_back(session: Session, ctx: ServiceContext, task: CaseTask, *, worker_id: int, actor: Actor, note: str,
              now: datetime) -> Case:
    """Withdraw `task` from `worker_id`, who holds it; returns its case (see the module docstring)."""
    case = session.get(Case, task.case_id)
    task.status = TASKS.step(TaskStatus(task.status), TaskAction.WITHDRAW)
    task.assignee_id, task.accepted_at, task.updated_at = None, None, now
    task.version += 1
    session.add(task)
    session.execute(sa.update(WorkOffer).where(
        WorkOffer.task_id == task.id, WorkOffer.worker_id == worker_id,
        WorkOffer.status == OfferStatus.ACCEPTED).values(
            status=OFFERS.step(OfferStatus.ACCEPTED, OfferAction.WITHDRAW), closed_at=now))
    abandon_drafts(session, task.id, worker_id, now)
    session.flush()
    others = session.exec(select(CaseTask.id).where(
        CaseTask.case_id == case.id, CaseTask.id != task.id,
        CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]))).first()
    text = f"{task.department_code}: {note}"
    if others is None and Status(case.status) in (Status.IN_PROGRESS, Status.REWORK):
        apply_action_in(session, ctx, case, action=Action.REASSIGN, actor=actor, note=text)
        session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None))
    else:
        note_event(session, ctx, case, Action.REASSIGN, actor, text)
    return case
