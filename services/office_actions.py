"""Lifecycle actions by the office (an API key acting as dispatcher or supervisor), through the work layer.

An action by API does what the same action does in chat: the case's status changes by the lifecycle
(who may, from which status, with which reason), and in the same transaction its work follows:

- register: the case is registered and queued for the dispatcher, which offers it.
- dispatch: its waiting tasks are offered (its tasks are made first when it never had any).
- reassign: whoever has it on offer or holds it is told and lets go; it is offered afresh to the best
  workers other than them (the same ones when nobody else can take it), and is DISPATCHED.
- shelve / unshelve: as the supervisor's 🗄 Shelve (services/extensions.py): offers withdrawn, holders told,
  the clock stopped, the review date `SHELVE_REVIEW_DAYS` away; back on: the clock restarts, it is offered.
- reopen / reject: rework goes back to the workers who did it, who are told why (services/rework.py).
- approve: the proofs are approved, every open proof card is decided, the workers are thanked.
- cancel / merge: offers withdrawn, holders told, open tasks cancelled (services/case_ending.py).
- grant_extension / refuse_extension: status only (the holder keeps the task).
When dispatch or reassign finds nobody to offer the case to, `NobodyAvailable` is raised and nothing is
written: a case is never DISPATCHED to nobody. Any lifecycle refusal also writes nothing.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.case_actions import ClosedByOffice
from models.events.work import RetractReason
from models.lifecycle import Action, Actor, Status, transition
from models.tables import Case, Person
from models.work import CaseTask, OfferStatus, PendingDispatch, TaskStatus, WorkOffer
from models.work import Escalation, EscalationReason
from models.work_lifecycles import TASKS, TaskAction
from models.work_lifecycles import CompletionAction as CompletionDecision
from services import case_ending, dispatch, dispatcher, extensions, rework
from services.cases import CaseNotFound, StaleCase, apply_action_in, event_time, facts_of
from services.context import ServiceContext
from services.db import transaction
from services.dispatch_pool import find_workers, handed_back_by, parent_code
from services.takeover import free_task
from services.verification import close_cards, decide_completions

SHELVE_REVIEW_DAYS = 30
_OPEN_TASK = (TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED)


class NobodyAvailable(Exception):
    """No active worker on duty could be offered the case; nothing was written."""

    def __init__(self, number: str) -> None:
        super().__init__(number)
        self.number = number


def act(ctx: ServiceContext, *, case_id: int, action: Action, actor: Actor, note: str | None = None,
        expected_version: int | None = None, merge_into_id: int | None = None) -> Case:
    """Apply `action` to the case as `actor` with its work (module docstring); returns the changed case.

    Raises CaseNotFound, StaleCase (`expected_version` or a concurrent writer), a lifecycle error,
    NobodyAvailable, or case_ending.MergeTargetInvalid; nothing is written on any refusal.
    """
    with transaction(ctx.sessions) as session:
        case = session.get(Case, case_id, with_for_update=session.get_bind().dialect.name == "postgresql")
        if case is None:
            raise CaseNotFound(str(case_id))
        if expected_version is not None and case.version != expected_version:
            raise StaleCase(case.number)
        # Judged before any work row moves: a refused action writes nothing (the transaction rolls back anyway).
        transition(facts_of(case), action, actor, at=event_time(ctx, case), note=note)
        _ACTIONS.get(action, _status_only)(session, ctx, case, action, actor, note, merge_into_id)
        registered = action is Action.REGISTER
    ctx.on_notifications()
    if registered:
        _wake_dispatcher(ctx)
    with ctx.sessions() as session:
        fresh = session.get(Case, case_id)
        session.expunge(fresh)
    return fresh


def _status_only(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
                 note: str | None, _into: int | None) -> None:
    apply_action_in(session, ctx, case, action=action, actor=actor, note=note)


def _register(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
              note: str | None, _into: int | None) -> None:
    apply_action_in(session, ctx, case, action=action, actor=actor, note=note)
    session.execute(sa.delete(PendingDispatch).where(PendingDispatch.case_id == case.id))
    dispatcher.enqueue(session, case_id=case.id, now=ctx.clock.now())


def _wake_dispatcher(ctx: ServiceContext) -> None:
    if ctx.on_registered is not None:
        ctx.on_registered()
    else:  # no dispatcher loop (tests, the CLI): offer it now, after the commit
        dispatcher.dispatch_pending(ctx)


def _dispatch(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
              note: str | None, _into: int | None) -> None:
    if Status(case.status) not in (Status.REGISTERED, Status.RETURNED):
        apply_action_in(session, ctx, case, action=action, actor=actor, note=note)  # the lifecycle refuses it
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case.id).order_by(CaseTask.id)).all()
    if not tasks:
        session.execute(sa.delete(PendingDispatch).where(PendingDispatch.case_id == case.id))
        dispatch.dispatch_new_case(session, ctx, case)  # makes the tasks, offers them, moves the case
        if Status(case.status) is not Status.DISPATCHED:
            raise NobodyAvailable(case.number)
        return
    offered = [task for task in tasks if TaskStatus(task.status) is TaskStatus.OFFERED]
    for task in tasks:
        if TaskStatus(task.status) is TaskStatus.WAITING and _offer(session, ctx, case, task, exclude=set()):
            offered.append(task)
            session.execute(sa.update(Escalation).where(Escalation.task_id == task.id,
                                                        Escalation.resolved_at.is_(None))
                            .values(resolved_at=ctx.clock.now()))
    if not offered:
        raise NobodyAvailable(case.number)
    apply_action_in(session, ctx, case, action=action, actor=actor, note=note)


def _reassign(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
              note: str | None, _into: int | None) -> None:
    apply_action_in(session, ctx, case, action=action, actor=actor, note=note)  # the lifecycle judges first
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.status.in_(_OPEN_TASK))
                         .order_by(CaseTask.id)).all()
    offered = 0
    for task in tasks:
        previous = set(session.exec(select(WorkOffer.worker_id).where(
            WorkOffer.task_id == task.id, WorkOffer.status.in_([OfferStatus.OPEN, OfferStatus.ACCEPTED]))).all())
        if task.assignee_id is not None:
            previous.add(task.assignee_id)
        free_task(session, ctx, case, task, RetractReason.REASSIGNED)
        if TaskStatus(task.status) is TaskStatus.ACCEPTED:
            task.status = TASKS.step(TaskStatus(task.status), TaskAction.WITHDRAW)
        session.add(task)
        session.flush()
        if _offer(session, ctx, case, task, exclude=previous):
            offered += 1
        else:  # this department has nobody: the task waits and the supervisors are told (as in dispatch)
            task.status = TASKS.step(TaskStatus(task.status), TaskAction.WAIT)
            session.add(task)
            dispatch.escalate(session, ctx, case, task, EscalationReason.NO_WORKER)
    if not offered:
        raise NobodyAvailable(case.number)
    session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None))


def _offer(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, *, exclude: set[int]) -> bool:
    """Offer `task` to the best workers but `exclude` (and those who handed it back); to `exclude` too when
    nobody else can take it. False (the task untouched) when nobody at all can."""
    limit = max(1, ctx.settings.dispatch_offer_limit)
    returned = handed_back_by(session, task.id)
    workers: list[Person] = []
    for skip in (exclude | returned, returned):
        if case.grid_code is not None and not workers:
            workers = find_workers(session, area_code=case.grid_code, department_code=task.department_code,
                                   exclude=skip, limit=limit, then=parent_code(session, case.grid_code))
    if not workers:
        return False
    task.status = TASKS.step(TaskStatus(task.status), TaskAction.OFFER)
    task.updated_at = ctx.clock.now()
    task.version += 1
    session.add(task)
    session.flush()
    for worker in workers:
        dispatch.offer_to_worker(session, ctx, case, task, worker)
    return True


def _shelve(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
            note: str | None, _into: int | None) -> None:
    extensions.shelve_in(session, ctx, case, actor=actor, note=(note or "").strip(),
                         review_at=ctx.clock.now() + timedelta(days=SHELVE_REVIEW_DAYS))


def _unshelve(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
              note: str | None, _into: int | None) -> None:
    extensions.unshelve_in(session, ctx, case, actor=actor)


def _reopen(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
            note: str | None, _into: int | None) -> None:
    tr = apply_action_in(session, ctx, case, action=action, actor=actor, note=note)
    rework.back_to_workers(session, ctx, case, reason=tr.note or "")


def _reject(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
            note: str | None, _into: int | None) -> None:
    tr = apply_action_in(session, ctx, case, action=action, actor=actor, note=note)
    decide_completions(session, ctx, case, CompletionDecision.REJECT, None, tr.note)
    rework.back_to_workers(session, ctx, case, reason=tr.note or "", card_ids=close_cards(session, ctx, case))


def _approve(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
             note: str | None, _into: int | None) -> None:
    apply_action_in(session, ctx, case, action=action, actor=actor, note=note)
    decide_completions(session, ctx, case, CompletionDecision.APPROVE, None, note)
    ctx.publish(session, ClosedByOffice(case_id=case.id, case_number=case.number,
                                        card_ids=close_cards(session, ctx, case)))


def _cancel(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
            note: str | None, _into: int | None) -> None:
    case_ending.cancel_in(session, ctx, case, actor=actor, reason=(note or "").strip())


def _merge(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor,
           note: str | None, into: int | None) -> None:
    target = session.get(Case, into) if into is not None else None
    case_ending.merge_in(session, ctx, case, target, actor=actor, note=note)

_ACTIONS = {
    Action.REGISTER: _register,
    Action.DISPATCH: _dispatch,
    Action.REASSIGN: _reassign,
    Action.SHELVE: _shelve,
    Action.UNSHELVE: _unshelve,
    Action.REOPEN: _reopen,
    Action.REJECT: _reject,
    Action.APPROVE: _approve,
    Action.CANCEL: _cancel,
    Action.MERGE: _merge,
}
