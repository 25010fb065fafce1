"""On and off duty: a worker on duty is offered work orders of their department and area.

Going off duty while holding orders asks first (`ask_about_held`): hand them back to dispatch now,
or keep them for `settings.off_duty_grace_min` minutes (services/handover.py); back on duty within
that time, they stay the worker's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from models.events.work import DutyChanged, RetractReason
from models.tables import Case
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OfferAction
from services import dispatch, handover
from services.context import ServiceContext
from services.db import transaction
from services.work_common import active_worker


@dataclass(frozen=True)
class DutyResult:
    on_duty: bool
    picked_up: int  # waiting orders offered now that the worker is on duty
    withdrawn: int  # open offers taken back as the worker went off duty
    held: int = 0  # orders the worker holds (asked about, kept or handed back)
    question: bool = False  # nothing changed: the worker must first say whether to hand the held orders back
    handed_back: int = 0  # held orders given back to dispatch now


def set_duty(ctx: ServiceContext, *, person_id: int, on_duty: bool | None = None, hand_back: bool | None = None,
             ask_about_held: bool = False) -> DutyResult:
    """Go on or off duty (None: toggle); publishes `DutyChanged`.

    On duty: the event comes first, then waiting orders of the worker's department and area are
    offered (so their messages follow the confirmation); a pending grace period ends, held orders stay.
    Off duty: open offers are withdrawn (and passed on to others), then the event. Held orders are
    handed back to dispatch when `hand_back` is True, else kept for the grace period; with
    `ask_about_held` and `hand_back` None, a worker holding orders gets `question=True` and nothing changes.
    """
    with transaction(ctx.sessions) as session:
        worker = active_worker(session, person_id)
        new = (not worker.on_duty) if on_duty is None else on_duty
        held = len(handover.held_tasks(session, worker.id)) if not new else 0
        if not new and held and hand_back is None and ask_about_held:
            return DutyResult(worker.on_duty, 0, 0, held=held, question=True)
        worker.on_duty = new
        worker.blocked_bot_at = None  # they are talking to the bot, so it can reach them
        session.add(worker)
        session.flush()
        picked = withdrawn = handed = 0
        if new:
            handover.cancel_grace(session, worker)
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
            if held and hand_back:
                cases = handover.release_held(session, ctx, worker, handed_back=True)
                handed = held
                handover.announce(session, ctx, worker, cases, handed_back=True)
            elif held:
                handover.hold_for_grace(session, ctx, worker)
            ctx.publish(session, DutyChanged(worker_id=worker.id, on_duty=False, withdrawn=withdrawn,
                                             kept=held - handed, handed_back=handed,
                                             grace_minutes=ctx.settings.off_duty_grace_min if held - handed else 0))
    ctx.on_notifications()
    return DutyResult(new, picked, withdrawn, held=held, handed_back=handed)
