"""Dispatch (派遣): choosing who handles a registered case, and offering it to them.

`dispatch_new_case` runs in the dispatcher's transaction (services/dispatcher.py), right after the
registering one, so a case's tasks, its offers and the work-order messages commit together or not at all.

What callers may rely on:
- A case gets one `CaseTask` per department of its category (the category's own department
  first, then `extra_departments`: 联勤联动); each task is dispatched on its own.
- A task is offered to the on-duty, active workers of its department whose area is the case's
  grid, least open orders first (ties: fewer open offers, then the longest-serving), at most
  `settings.dispatch_offer_limit` of them. With nobody there, the parent area's pool (workers
  whose area is the grid's street) is tried; with nobody there either, the task waits and the
  nearest supervisors of the area are told (an `Escalation` row records whom).
- A patrol case (source PATROL) reported by an active worker is assigned to that worker at
  once (dispatched and accepted in the same transaction); other departments are offered as usual.
  One its finder handed to dispatch (`PatrolReport.handed_to_dispatch`) is offered like any case,
  never to its finder.
- The case moves REGISTERED/RETURNED → DISPATCHED as soon as any task is offered.
- Every offer publishes `OfferMade`, a patrol assignment `PatrolOrderAssigned`, nobody found
  `DispatchEscalated`, an offer taken back `OfferRetracted` (models/events/work.py); the channel
  renderers (bot/renderers/work*.py) word the work order and queue its messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, func, select

from models.events.work import DispatchEscalated, OfferMade, OfferRetracted, PatrolOrderAssigned, RetractReason
from models.lifecycle import OPEN, Action, Actor, Role, Status
from models.patrol import PatrolReport
from models.tables import Area, AreaLevel, Case, CaseSource, Category, Person
from models.work import CaseTask, Escalation, EscalationReason, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OFFERS, TASKS, OfferAction, TaskAction, initial
from services import cases  # cases dispatches through this module: attribute access keeps the mutual import safe
from services import batch_reads, dispatch_pool, grouped_writes, reference, rows, welfare_calls
from services.areas import supervisor_group
from services.context import ServiceContext
from services.db import insert_now
from services.dispatch_pool import find_workers, handed_back_by, parent_code, supervises, supervisors_of

log = logging.getLogger(__name__)


# -- offering -----------------------------------------------------------------------------------


def dispatch_new_case(session: Session, ctx: ServiceContext, case: Case) -> None:
    """Create the case's tasks and offer them (or assign a patrol case to its reporter) within `session`."""
    if case.grid_code is None:
        return  # no grid map was loaded: the case waits, registered, for a dispatcher
    category = reference.category(session, case.category_code)
    if welfare_calls.check_of(session, case.id) is not None:
        _offer_welfare_check(session, ctx, case, category)  # a listed elder's alarm: whoever is on call
        return
    now = ctx.clock.now()
    tasks = [
        rows.new(CaseTask, case_id=case.id, department_code=code, lead=index == 0,
                 status=initial(TASKS, TaskStatus.WAITING), created_at=now, updated_at=now)
        for index, code in enumerate(departments_for(category))
    ]
    for task in tasks:
        insert_now(session, task)
    batch_reads.note_tasks(session, case.id, tasks)
    remaining, finder = tasks, None
    if case.source == CaseSource.PATROL:
        patrol = session.get(PatrolReport, case.id)
        if patrol is not None and patrol.handed_to_dispatch:
            finder = patrol.finder_id  # "not my job": the pool gets it, its finder is not asked again
        elif assign_to_reporter(session, ctx, case, tasks[0]):
            remaining = tasks[1:]
    offered = [offer_task(session, ctx, case, task, new_task=True, skip=finder) for task in remaining]
    if any(offered):  # else every task waits (escalated), or a patrol case is already its finder's
        ensure_dispatched(session, ctx, case, offered=True)


def _offer_welfare_check(session: Session, ctx: ServiceContext, case: Case, category: Category) -> None:
    """One task, offered at once to everyone on the area's duty roster now (`offer_task` asks
    `welfare_calls.on_call_for`); with nobody on call the task waits and the supervisors are told."""
    now = ctx.clock.now()
    task = CaseTask(case_id=case.id, department_code=category.department_code, lead=True,
                    status=initial(TASKS, TaskStatus.WAITING), created_at=now, updated_at=now)
    session.add(task)
    session.flush()
    batch_reads.note_tasks(session, case.id, [task])
    if offer_task(session, ctx, case, task, new_task=True):
        ensure_dispatched(session, ctx, case, offered=True)


def departments_for(category: Category) -> list[str]:
    """The category's department, then its joint-handling departments, each once."""
    seen: list[str] = []
    for code in [category.department_code, *(category.extra_departments or [])]:
        if code and code not in seen:
            seen.append(code)
    return seen


def offer_task(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, *,
               escalate_when_nobody: bool = True, new_task: bool = False, skip: int | None = None) -> list[WorkOffer]:
    """Offer `task` to the best workers (grid first, then the parent area's pool), or let it wait and escalate.

    Workers who handed this task back are skipped (a `new_task` has none), and `skip` (a patrol case's
    finder who handed it to dispatch). Returns the offers made (empty when it waits).
    """
    exclude = set() if new_task else handed_back_by(session, task.id)
    if skip is not None:
        exclude = {*exclude, skip}
    limit = max(1, ctx.settings.dispatch_offer_limit)
    on_call = welfare_calls.on_call_for(session, ctx, case, exclude=exclude)  # None: not a welfare check
    workers = on_call if on_call is not None else find_workers(
        session, area_code=case.grid_code, department_code=task.department_code, exclude=exclude, limit=limit,
        then=parent_code(session, case.grid_code))
    if not workers:
        _step_task(session, ctx, task, TaskAction.WAIT)
        if escalate_when_nobody:
            escalate(session, ctx, case, task, EscalationReason.NO_WORKER)
        return []
    _step_task(session, ctx, task, TaskAction.OFFER)
    return [offer_to_worker(session, ctx, case, task, worker) for worker in workers]


_TASK_STEP = sa.update(CaseTask.__table__).where(CaseTask.__table__.c.id == sa.bindparam("task_id"))


def _step_task(session: Session, ctx: ServiceContext, task: CaseTask, action: TaskAction) -> None:
    """Move `task` by `action` (judged by its lifecycle) with one prebuilt UPDATE; the task in the session
    learns the new values without a flush of the unit of work."""
    values = {"status": TASKS.step(TaskStatus(task.status), action), "updated_at": ctx.clock.now(),
              "version": task.version + 1}
    if not grouped_writes.waits(session, task):  # else the task's own INSERT, still waiting, writes them
        grouped_writes.write(session, _TASK_STEP, [{"task_id": task.id, **values}])  # a batch's go together
    for key, value in values.items():
        set_committed_value(task, key, value)


def offer_to_worker(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, worker: Person) -> WorkOffer:
    """Open an offer of `task` to `worker` and publish `OfferMade` (its renderer sends the work order)."""
    offer = rows.new(WorkOffer, case_id=case.id, task_id=task.id, worker_id=worker.id,
                     status=initial(OFFERS, OfferStatus.OPEN), created_at=ctx.clock.now())
    insert_now(session, offer)
    dispatch_pool.note_offer(session, worker.id)
    ctx.publish(session, OfferMade(offer_id=offer.id, case_id=case.id, task_id=task.id, worker_id=worker.id))
    return offer


_ORDER_MESSAGE = sa.update(WorkOffer.__table__).where(WorkOffer.__table__.c.id == sa.bindparam("offer_id"))


def remember_order_message(session: Session, offer: WorkOffer, notification_id: int | None) -> None:
    """The offer's work order is the queued notification `notification_id` (a retraction edits or unqueues
    it); one prebuilt UPDATE, the offer in the session learns it without a flush."""
    if not grouped_writes.waits(session, offer):  # else the offer's own INSERT, still waiting, writes it
        grouped_writes.write(session, _ORDER_MESSAGE, [{
            "offer_id": offer.id, "message_notification_id": notification_id, "follow_up_notification_ids": []}])
    set_committed_value(offer, "message_notification_id", notification_id)
    set_committed_value(offer, "follow_up_notification_ids", [])


def ensure_dispatched(session: Session, ctx: ServiceContext, case: Case, *, offered: bool = False) -> None:
    """Move a registered or returned case to DISPATCHED once any of its tasks is offered or held
    (`offered`: the caller just made offers, so there is no need to count them)."""
    if Status(case.status) not in (Status.REGISTERED, Status.RETURNED):
        return
    active = offered or session.exec(
        select(func.count()).select_from(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status.in_([TaskStatus.OFFERED, TaskStatus.ACCEPTED])
        )
    ).one()
    if active:
        cases.apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))


def assign_to_reporter(session: Session, ctx: ServiceContext, case: Case, task: CaseTask) -> bool:
    """A worker's own patrol report: theirs at once, no offers. False when the reporter is not an active worker."""
    reporter = session.get(Person, case.reporter_id) if case.reporter_id else None
    if reporter is None or not reporter.active or not reporter.has_role(Role.WORKER):
        return False
    now = ctx.clock.now()
    cases.apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))
    cases.apply_action_in(session, ctx, case, action=Action.ACCEPT, actor=Actor(Role.WORKER, reporter.id))
    session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=reporter.id))
    task.status = TASKS.step(TaskStatus(task.status), TaskAction.ASSIGN)
    task.assignee_id, task.accepted_at, task.updated_at = reporter.id, now, now
    task.version += 1
    session.add(task)
    session.add(WorkOffer(case_id=case.id, task_id=task.id, worker_id=reporter.id,
                          status=initial(OFFERS, OfferStatus.ACCEPTED),
                          created_at=now, closed_at=now))
    ctx.publish(session, PatrolOrderAssigned(case_id=case.id, task_id=task.id, worker_id=reporter.id))
    return True


# -- taking offers back ---------------------------------------------------------------------------


# Which action closes an offer with a given status: only for callers still passing `status=` (see retract_offer).
def retract_offer(session: Session, ctx: ServiceContext, offer: WorkOffer, *, action: OfferAction,
                  reason: RetractReason, note: str | None = None) -> None:
    """Close `offer` by `action` (LOSE, WITHDRAW ...) and publish `OfferRetracted` (its renderers correct the
    worker's copy). Raises `IllegalStep` when the offer's status does not allow `action`.
    """
    offer.status = OFFERS.step(OfferStatus(offer.status), action)
    offer.closed_at = ctx.clock.now()
    if note is not None:
        offer.note = note
    session.add(offer)
    case = session.get(Case, offer.case_id)
    ctx.publish(session, OfferRetracted(offer_id=offer.id, case_id=offer.case_id, case_number=case.number,
                                        worker_id=offer.worker_id, reason=reason))


def open_offers(session: Session, task_id: int) -> list[WorkOffer]:
    return list(session.exec(
        select(WorkOffer).where(WorkOffer.task_id == task_id, WorkOffer.status == OfferStatus.OPEN)
        .order_by(WorkOffer.id)
    ).all())


# -- escalation and picking up waiting work ---------------------------------------------------------


def escalate(session: Session, ctx: ServiceContext, case: Case, task: CaseTask | None,
             reason: EscalationReason, *, exclude: Iterable[int] = ()) -> Escalation:
    """Record that nobody could be found for `case` and publish `DispatchEscalated` (the nearest supervisors
    and the area's group are told)."""
    people = supervisors_of(session, case.grid_code, exclude=exclude)
    group = supervisor_group(session, case.grid_code, grid_code=case.grid_code) if case.grid_code else None
    chat_ids = [group[0]] if group else []
    row = Escalation(case_id=case.id, task_id=task.id if task else None, area_code=case.grid_code, reason=reason,
                     notified_person_ids=[p.id for p in people], notified_chat_ids=chat_ids,
                     created_at=ctx.clock.now())
    session.add(row)
    session.flush()
    ctx.publish(session, DispatchEscalated(escalation_id=row.id, case_id=case.id, task_id=row.task_id,
                                           reason=reason, supervisor_ids=tuple(p.id for p in people)))
    if not people and not chat_ids:
        log.warning("case %s: %s and no supervisor to tell in %s", case.number, reason.value, case.grid_code)
    return row


def pick_up_waiting(session: Session, ctx: ServiceContext, worker: Person, *, limit: int = 20) -> int:
    """Offer waiting tasks of `worker`'s department and area to the workers now available; returns how many."""
    if worker.area_code is None or worker.department_code is None:
        return 0
    grids = [worker.area_code, *session.exec(
        select(Area.code).where(Area.parent_code == worker.area_code, Area.level == AreaLevel.GRID)
    ).all()]
    rows = session.exec(
        select(CaseTask, Case).join(Case, Case.id == CaseTask.case_id).where(
            CaseTask.status == TaskStatus.WAITING,
            CaseTask.department_code == worker.department_code,
            Case.grid_code.in_(grids),
            Case.status.in_([s.value for s in OPEN]),
        ).order_by(Case.created_at, CaseTask.id).limit(limit)
    ).all()
    picked = 0
    now = ctx.clock.now()
    for task, case in rows:
        if offer_task(session, ctx, case, task, escalate_when_nobody=False):
            picked += 1
            session.execute(sa.update(Escalation).where(
                Escalation.task_id == task.id, Escalation.resolved_at.is_(None)).values(resolved_at=now))
            ensure_dispatched(session, ctx, case)
    return picked


__all__ = [
    "assign_to_reporter",
    "departments_for",
    "dispatch_new_case",
    "ensure_dispatched",
    "escalate",
    "find_workers",
    "handed_back_by",
    "offer_task",
    "offer_to_worker",
    "open_offers",
    "pick_up_waiting",
    "retract_offer",
    "supervises",
    "supervisors_of",
]
