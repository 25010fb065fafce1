"""Telegram renderers of the work events (models/events/work.py): text, keyboards and parse modes live here.

This module words retractions; bot/renderers/work_offers.py the work order and a worker's answers,
bot/renderers/work_proofs.py the completion flow. `RENDERERS` joins all three for onegrid/wiring.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from bot.renderers import work_offers, work_proofs
from models.events.work import OfferRetracted, OrderWithdrawn, RetractReason
from models.tables import Notification, NotificationStatus, Person
from models.work import WorkOffer
from onegrid.i18n import N_, gettext_for
from services.bus import EventTable, merge_tables
from services.context import ServiceContext
from services.notify import enqueue

RETRACT_NOTICES: dict[RetractReason, str] = {
    RetractReason.CASE_ENDED: N_("Work order {number} is no longer open; no action needed."),
    RetractReason.TAKEN: N_("Work order {number} was taken by another worker. No action needed."),
    RetractReason.OFF_DUTY: N_("You went off duty: work order {number} was offered to others."),
    RetractReason.DEACTIVATED: N_("Work order {number} was withdrawn."),
    RetractReason.REASSIGNED: N_("Work order {number} was reassigned by the supervisor."),
    RetractReason.TAKEN_OVER: N_("Work order {number} was taken over by the supervisor."),
    RetractReason.SHELVED: N_("Work order {number} was put on hold by the supervisor."),
}


def offer_retracted(session: Session, ctx: ServiceContext, event: OfferRetracted) -> None:
    """Make the worker's copy of the offer say it is gone.

    An unsent offer is taken out of the queue (a message never seen needs no correction); a sent offer
    message is edited to the notice (a photo's caption), which also removes its buttons; one on the wire
    right now is followed by the notice as a new message. `follow_up_notification_ids` are only set on
    offers made before a work order became one message (then its photo and venue followed it).
    """
    offer = session.get(WorkOffer, event.offer_id)
    if offer is None:
        return
    now = ctx.clock.now()
    if offer.follow_up_notification_ids:
        session.execute(sa.delete(Notification).where(
            Notification.id.in_(offer.follow_up_notification_ids), Notification.status == NotificationStatus.PENDING))
    if offer.message_notification_id is None:
        return
    removed = session.execute(sa.delete(Notification).where(
        Notification.id == offer.message_notification_id, Notification.status == NotificationStatus.PENDING))
    if removed.rowcount:
        offer.message_notification_id = None
        session.add(offer)
        return
    row = session.get(Notification, offer.message_notification_id, populate_existing=True)
    worker = session.get(Person, event.worker_id)
    if row is None or worker is None:
        return
    text = gettext_for(worker.locale)(RETRACT_NOTICES[event.reason]).format(number=event.case_number)
    if row.status == NotificationStatus.SENT and row.telegram_message_id is not None:
        # A work order sent as the site photo keeps its photo; the caption becomes the notice.
        method, key = ("editMessageCaption", "caption") if row.method == "sendPhoto" else ("editMessageText", "text")
        enqueue(session, chat_id=row.chat_id, method=method, now=now, person_id=worker.id, case_id=event.case_id,
                payload={"message_id": row.telegram_message_id, key: text, "parse_mode": "HTML"})
    elif row.status == NotificationStatus.SENDING:
        enqueue(session, chat_id=row.chat_id, method="sendMessage", now=now, person_id=worker.id,
                case_id=event.case_id, payload={"text": text, "parse_mode": "HTML"})


def order_withdrawn(session: Session, ctx: ServiceContext, event: OrderWithdrawn) -> None:
    """Tell the worker who held the order that it is no longer theirs."""
    worker = session.get(Person, event.worker_id)
    if worker is None or worker.telegram_user_id is None:
        return
    text = gettext_for(worker.locale)(RETRACT_NOTICES[event.reason]).format(number=event.case_number)
    enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
            person_id=worker.id, case_id=event.case_id, payload={"text": text, "parse_mode": "HTML"})


RENDERERS: EventTable = merge_tables([
    {OfferRetracted: [offer_retracted], OrderWithdrawn: [order_withdrawn]},
    work_offers.RENDERERS,
    work_proofs.RENDERERS,
])
