"""On and off duty: a worker on duty is offered work orders of their department and area."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from models.events.work import DutyChanged, RetractReason
from models.tables import Case
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OfferAction
from services import dispatch
from services.context import ServiceContext
from services.db import transaction
from services.work_common import active_worker


@dataclass(frozen=True)
class DutyResult:
    on_duty: bool
    picked_up: int  # waiting orders offered now that the worker is on duty
    withdrawn: int  # open offers taken back as the worker went off duty


def set_duty(ctx: ServiceContext, *, person_id: int, on_duty: bool | None = None) -> DutyResult:
    """Go on or off duty (None: toggle); publishes `DutyChanged`.

    On duty: the event comes first, then waiting orders of the worker's department and area are
    offered (so their messages follow the confirmation). Off duty: open offers are withdrawn (and
    passed on to others), then the event; orders already accepted stay the worker's.
    """
    with transaction(ctx.sessions) as session:
        worker = active_worker(session, person_id)
        new = (not worker.on_duty) if on_duty is None else on_duty
        worker.on_duty = new
        worker.blocked_bot_at = None  # they are talking to the bot, so it can reach them
        session.add(worker)
        session.flush()
        picked = withdrawn = 0
        if new:
            ctx.publish(session, DutyChanged(worker_id=worker.id, on_duty=True))
            picked = dispatch.pick_up_waiting(session, ctx, worker)
        else:
            offers = session.exec(select(WorkOffer).where(
                WorkOffer.worker_id == worker.id, WorkOffer.status == OfferStatus.OPEN)).all()
            for offer in offers:
                case = session.get(Case, offer.case_id)
                dispatch.retract_offer(session, ctx, offer, action=OfferAction.WITHDRAW, reason=RetractReason.OFF_DUTY)
                withdrawn += 1
                task = session.get(CaseTask, offer.task_id)
                if task.status == TaskStatus.OFFERED and not dispatch.open_offers(session, task.id):
                    dispatch.offer_task(session, ctx, case, task)
                    dispatch.ensure_dispatched(session, ctx, case)
            ctx.publish(session, DutyChanged(worker_id=worker.id, on_duty=False, withdrawn=withdrawn))
    ctx.on_notifications()
    return DutyResult(new, picked, withdrawn)
