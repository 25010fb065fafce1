"""A worker answers a work order: accept it, or hand it back with a reason (退单).

What callers may rely on:
- Accept: the first Accept wins by a conditional update of the task (status and version) and of
  the case (version, via services.cases); the other workers' offers are retracted (TAKEN). The
  same worker pressing twice accepts once (`AcceptOutcome.ALREADY_YOURS`). Publishes `OrderAccepted`.
- Return needs a reason; the task goes back to dispatch without the workers who handed it back;
  when no department is left working on the case, the case itself is RETURNED, then dispatched
  again. Publishes `OrderReturned`.
- `message_id` is the worker's own message they pressed the button on (opaque here); the events
  carry it so the channel can update that message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.work import OrderAccepted, OrderReturned, RetractReason
from models.lifecycle import OPEN, Action, Actor, Role, Status
from models.tables import Case
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OFFERS, TASKS, OfferAction, TaskAction, guard, initial
from services import dispatch
from services.cases import StaleCase, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.work_common import (
    NotYourOrder,
    OfferUnavailable,
    ReturnNotAllowed,
    abandon_drafts,
    active_worker,
    clean_reason,
    note_event,
)

ATTEMPTS = 3  # another department's worker may move the same case on first: judge again on fresh rows


class AcceptOutcome(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_YOURS = "already_yours"
    CASE_ENDED = "case_ended"  # the case was closed or cancelled meanwhile; the offer is withdrawn


@dataclass(frozen=True)
class AcceptResult:
    outcome: AcceptOutcome
    case_number: str
    task_id: int


@dataclass(frozen=True)
class ReturnResult:
    case_number: str
    reoffered: int  # workers the task was offered to again
    still_offered: bool  # other workers still hold open offers of it (nothing re-dispatched)


def accept_offer(ctx: ServiceContext, *, offer_id: int, worker_id: int, message_id: int | None = None) -> AcceptResult:
    """Accept an offered work order. Raises OfferUnavailable when another worker was first."""
    for attempt in range(ATTEMPTS):
        try:
            result = _accept_once(ctx, offer_id=offer_id, worker_id=worker_id, message_id=message_id)
        except StaleCase:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        ctx.on_notifications()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _accept_once(ctx: ServiceContext, *, offer_id: int, worker_id: int, message_id: int | None) -> AcceptResult:
    with transaction(ctx.sessions) as session:
        worker = active_worker(session, worker_id)
        offer = session.get(WorkOffer, offer_id)
        if offer is None or offer.worker_id != worker_id:
            raise NotYourOrder(str(offer_id))
        case = session.get(Case, offer.case_id)
        task = session.get(CaseTask, offer.task_id)
        if offer.status == OfferStatus.ACCEPTED:
            return AcceptResult(AcceptOutcome.ALREADY_YOURS, case.number, task.id)
        if offer.status != OfferStatus.OPEN:
            raise OfferUnavailable(case.number, OfferStatus(offer.status))
        if Status(case.status) not in OPEN:
            dispatch.retract_offer(session, ctx, offer, action=OfferAction.WITHDRAW,
                                  reason=RetractReason.CASE_ENDED)
            return AcceptResult(AcceptOutcome.CASE_ENDED, case.number, task.id)
        now = ctx.clock.now()
        sources, target = guard(TASKS, TaskAction.ACCEPT)
        won = session.execute(
            sa.update(CaseTask)
            .where(CaseTask.id == task.id, CaseTask.status.in_(sources), CaseTask.version == task.version)
            .values(status=target, assignee_id=worker.id, accepted_at=now, updated_at=now,
                    version=task.version + 1)
        ).rowcount
        if won != 1:
            fresh = session.get(CaseTask, task.id, populate_existing=True)
            if fresh is not None and fresh.assignee_id == worker.id:
                return AcceptResult(AcceptOutcome.ALREADY_YOURS, case.number, task.id)
            raise OfferUnavailable(case.number, OfferStatus.TAKEN)
        session.refresh(task)
        actor = Actor(Role.WORKER, worker.id)
        if Status(case.status) is Status.DISPATCHED:
            apply_action_in(session, ctx, case, action=Action.ACCEPT, actor=actor)
            session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=worker.id))
        else:
            # A joint case another department already started: this department's part begins now.
            note_event(session, ctx, case, Action.ACCEPT, actor, f"{task.department_code}: accepted")
        offer.status, offer.closed_at = OFFERS.step(OfferStatus(offer.status), OfferAction.ACCEPT), now
        session.add(offer)
        for other in dispatch.open_offers(session, task.id):
            if other.id != offer.id:
                dispatch.retract_offer(session, ctx, other, action=OfferAction.LOSE, reason=RetractReason.TAKEN)
        ctx.publish(session, OrderAccepted(offer_id=offer.id, case_id=case.id, task_id=task.id, worker_id=worker.id,
                                           actor_message_id=message_id))
        return AcceptResult(AcceptOutcome.ACCEPTED, case.number, task.id)


def return_order(ctx: ServiceContext, *, worker_id: int, reason: str, offer_id: int | None = None,
                 task_id: int | None = None, message_id: int | None = None) -> ReturnResult:
    """Hand an offered or accepted order back to dispatch, with a reason (退单).

    Give `offer_id` (an offer, answered or not) or `task_id` (a task the worker holds).
    """
    note = clean_reason(reason)
    for attempt in range(ATTEMPTS):
        try:
            result = _return_once(ctx, worker_id=worker_id, note=note, offer_id=offer_id, task_id=task_id,
                                  message_id=message_id)
        except StaleCase:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        ctx.on_notifications()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _return_once(ctx: ServiceContext, *, worker_id: int, note: str, offer_id: int | None, task_id: int | None,
                 message_id: int | None) -> ReturnResult:
    with transaction(ctx.sessions) as session:
        worker = active_worker(session, worker_id)
        offer: WorkOffer | None = None
        if offer_id is not None:
            offer = session.get(WorkOffer, offer_id)
            if offer is None or offer.worker_id != worker.id:
                raise NotYourOrder(str(offer_id))
            task = session.get(CaseTask, offer.task_id)
        else:
            task = session.get(CaseTask, task_id) if task_id is not None else None
            if task is None or task.assignee_id != worker.id:
                raise NotYourOrder(str(task_id))
            offer = session.exec(select(WorkOffer).where(
                WorkOffer.task_id == task.id, WorkOffer.worker_id == worker.id,
                WorkOffer.status == OfferStatus.ACCEPTED)).first()
        case = session.get(Case, task.case_id)
        now = ctx.clock.now()
        accepted = task.status == TaskStatus.ACCEPTED and task.assignee_id == worker.id
        if offer is not None and offer.status == OfferStatus.OPEN and not accepted:
            # Conditional: an Accept by someone else committing meanwhile closes this offer first.
            sources, target = guard(OFFERS, OfferAction.DECLINE)
            declined = session.execute(
                sa.update(WorkOffer).where(WorkOffer.id == offer.id, WorkOffer.status.in_(sources))
                .values(status=target, note=note, closed_at=now)
            ).rowcount
            if declined != 1:
                raise StaleCase(case.number)
            session.refresh(offer)
            session.refresh(task)
        elif accepted:
            if Status(case.status) not in (Status.DISPATCHED, Status.IN_PROGRESS):
                raise ReturnNotAllowed(case.number)
            sources, target = guard(TASKS, TaskAction.RETURN)
            moved = session.execute(
                sa.update(CaseTask)
                .where(CaseTask.id == task.id, CaseTask.version == task.version,
                       CaseTask.status.in_(sources), CaseTask.assignee_id == worker.id)
                .values(status=target, assignee_id=None, accepted_at=None, updated_at=now,
                        version=task.version + 1)
            ).rowcount
            if moved != 1:
                raise StaleCase(case.number)
            session.refresh(task)
            if offer is None or offer.status != OfferStatus.ACCEPTED:
                offer = held_offer(session, task, worker.id, now)
            offer.status = OFFERS.step(OfferStatus(offer.status), OfferAction.RETURN)
            offer.note, offer.closed_at = note, now
            session.add(offer)
            session.flush()
            abandon_drafts(session, task.id, worker.id, now)
        else:
            status = OfferStatus(offer.status) if offer is not None else OfferStatus.WITHDRAWN
            raise OfferUnavailable(case.number, status)
        ctx.publish(session, OrderReturned(case_id=case.id, task_id=task.id, offer_id=offer.id, worker_id=worker.id,
                                           reason=note, actor_message_id=message_id))
        still_open = [o for o in dispatch.open_offers(session, task.id) if o.id != offer.id]
        if not accepted and (still_open or task.status != TaskStatus.OFFERED):
            # Others may still accept it (or one already has): nothing goes back to dispatch.
            note_event(session, ctx, case, Action.RETURN, Actor(Role.WORKER, worker.id),
                       f"{task.department_code}: {note}")
            return ReturnResult(case.number, 0, bool(still_open))
        others_working = session.exec(select(CaseTask.id).where(
            CaseTask.case_id == case.id, CaseTask.id != task.id,
            CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]))).first()
        if others_working is None and Status(case.status) in (Status.DISPATCHED, Status.IN_PROGRESS):
            apply_action_in(session, ctx, case, action=Action.RETURN, actor=Actor(Role.WORKER, worker.id), note=note)
            session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None))
        else:
            note_event(session, ctx, case, Action.RETURN, Actor(Role.WORKER, worker.id),
                       f"{task.department_code}: {note}")
        offers = dispatch.offer_task(session, ctx, case, task)
        dispatch.ensure_dispatched(session, ctx, case)
        return ReturnResult(case.number, len(offers), False)


def held_offer(session: Session, task: CaseTask, worker_id: int, now: datetime) -> WorkOffer:
    """The ACCEPTED offer by which `worker_id` holds `task`; a new ACCEPTED row when they hold it without one
    (a supervisor's own order), so that handing it back is recorded as a RETURN like any other."""
    offer = session.exec(select(WorkOffer).where(
        WorkOffer.task_id == task.id, WorkOffer.worker_id == worker_id,
        WorkOffer.status == OfferStatus.ACCEPTED).order_by(WorkOffer.id.desc())).first()
    if offer is None:
        offer = WorkOffer(case_id=task.case_id, task_id=task.id, worker_id=worker_id,
                          status=initial(OFFERS, OfferStatus.ACCEPTED), created_at=now, closed_at=now)
    return offer
