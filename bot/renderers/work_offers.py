"""Telegram renderers of dispatch and of a worker's answers: the work order, accept, return, duty, escalation."""

from __future__ import annotations

import html
from datetime import datetime, timedelta

from sqlmodel import Session, select

from bot.renderers.work_text import NO_PREVIEW, category_name, department_name, grid_name, order_text, tell
from bot.worker_ui import offer_keyboard, task_keyboard
from models.events.work import DispatchEscalated, DutyChanged, OfferMade, OrderAccepted, OrderReturned, PatrolOrderAssigned
from models.tables import Case, Notification, Person, Photo
from models.work import CaseTask, EscalationReason, WorkOffer
from onegrid.i18n import gettext_for
from services.areas import supervisor_group
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue

# -- the work order -------------------------------------------------------------------------------------


def offer_made(session: Session, ctx: ServiceContext, event: OfferMade) -> None:
    """The work order with Accept / Return (sent at once), then the resident's photo and the place.

    The offer remembers its notification rows, so a retraction can edit or unqueue them.
    """
    offer = session.get(WorkOffer, event.offer_id)
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    worker = session.get(Person, event.worker_id)
    now = ctx.clock.now()
    _ = gettext_for(worker.locale)
    text = order_text(session, ctx, case, task, worker.locale,
                      header=_("🆕 Work order {number}").format(number=case.number))
    message = enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=now,
                      person_id=worker.id, case_id=case.id,
                      payload={"text": text, "parse_mode": "HTML", "link_preview_options": NO_PREVIEW,
                               "reply_markup": offer_keyboard(_, offer.id)})
    follow_ups = work_order_attachments(session, ctx, case, worker, first_at=now)
    session.flush()
    offer.message_notification_id = message.id
    offer.follow_up_notification_ids = [n.id for n in follow_ups]
    session.add(offer)


def work_order_attachments(session: Session, ctx: ServiceContext, case: Case, worker: Person, *,
                           first_at: datetime) -> list[Notification]:
    """Queue the resident's photo and the case location for `worker`, two per-chat intervals apart.

    Telegram takes one message a second per chat; the work order itself may leave the queue up to
    a second after `first_at`, so each follow-up is queued two intervals after the one before: it is
    then sent when due instead of holding the sender back on the chat's pace.
    """
    _ = gettext_for(worker.locale)
    step = timedelta(seconds=2 * ctx.settings.delivery_chat_interval_s)
    due = first_at
    queued: list[Notification] = []

    def add(method: str, payload: dict) -> None:
        nonlocal due
        due += step
        row = enqueue(session, chat_id=worker.telegram_user_id, method=method, payload=payload, now=first_at,
                      person_id=worker.id, case_id=case.id)
        row.next_attempt_at = due  # Telegram takes one message a second per chat: queue it for then
        queued.append(row)

    photo = report_photo(session, ctx, case)
    if photo is not None:
        add("sendPhoto", {"photo_path": photo.path, "parse_mode": "HTML",
                          "caption": _("Resident's photo · {number}").format(number=case.number)})
    title = f"{case.number} · {category_name(session, case.category_code, worker.locale)}"[:128]
    if case.address:
        add("sendVenue", {"latitude": case.lat, "longitude": case.lon, "title": title,
                          "address": case.address[:256]})
    else:
        add("sendLocation", {"latitude": case.lat, "longitude": case.lon})
    return queued


def report_photo(session: Session, ctx: ServiceContext, case: Case) -> Photo | None:
    """The reporter's first photo whose cleaned copy is on disk (only that copy is ever sent on)."""
    photos = session.exec(
        select(Photo).where(Photo.case_id == case.id, Photo.purpose == "report").order_by(Photo.id)
    ).all()
    for photo in photos:
        if (ctx.settings.data_dir / photo.path).is_file():
            return photo
    return None


def patrol_order_assigned(session: Session, ctx: ServiceContext, event: PatrolOrderAssigned) -> None:
    """The reporting worker gets their own patrol case as a held order, with Complete."""
    reporter = session.get(Person, event.worker_id)
    if reporter is None or reporter.telegram_user_id is None:
        return
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    _ = gettext_for(reporter.locale)
    text = order_text(session, ctx, case, task, reporter.locale,
                      header=_("📋 Your patrol report is case {number}, assigned to you.").format(number=case.number))
    text += "\n\n" + _("Press Complete when the problem is solved.")
    enqueue(session, chat_id=reporter.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
            person_id=reporter.id, case_id=case.id,
            payload={"text": text, "parse_mode": "HTML", "link_preview_options": NO_PREVIEW,
                     "reply_markup": task_keyboard(_, task.id)})


def dispatch_escalated(session: Session, ctx: ServiceContext, event: DispatchEscalated) -> None:
    """Tell the nearest supervisors, and the area's supervisor group (in its topic for the grid, if bound)."""
    case = session.get(Case, event.case_id)
    task = session.get(CaseTask, event.task_id) if event.task_id is not None else None
    now = ctx.clock.now()
    for person in (session.get(Person, pid) for pid in event.supervisor_ids):
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                case_id=case.id, payload={"text": escalation_text(session, case, task, event.reason, person.locale),
                                          "parse_mode": "HTML"})
    group = supervisor_group(session, case.grid_code, grid_code=case.grid_code) if case.grid_code else None
    if group is not None:
        payload = {"text": escalation_text(session, case, task, event.reason, ctx.settings.default_locale),
                   "parse_mode": "HTML"}
        if group[1] is not None:  # the forum topic bound to the case's grid or an area above it
            payload["message_thread_id"] = group[1]
        enqueue(session, chat_id=group[0], method="sendMessage", now=now, case_id=case.id, payload=payload)


def escalation_text(session: Session, case: Case, task: CaseTask | None, reason: EscalationReason,
                    locale: str) -> str:
    _ = gettext_for(locale)
    lines = []
    if reason is EscalationReason.NO_WORKER:
        lines.append(_("⚠️ No worker available for case {number}").format(number=case.number))
        lines.append(_("Category: {category}").format(
            category=html.escape(category_name(session, case.category_code, locale))))
        if task is not None:
            lines.append(_("Department: {department}").format(
                department=html.escape(department_name(session, task.department_code, locale))))
        lines.append(_("Grid: {grid}").format(grid=html.escape(grid_name(session, case.grid_code, locale))))
        lines.append(_("Nobody of this department is on duty in the grid or its street. The order goes to the "
                       "first such worker who comes on duty; call someone in if it cannot wait."))
    else:
        lines.append(_("⚠️ Case {number} awaits verification, but no supervisor of the area can verify it "
                       "(the only ones handled it).").format(number=case.number))
    return "\n".join(lines)


# -- the worker's answers ------------------------------------------------------------------------------------


def order_accepted(session: Session, ctx: ServiceContext, event: OrderAccepted) -> None:
    """The worker's offer message becomes the accepted order, with Complete and Return."""
    worker = session.get(Person, event.worker_id)
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    _ = gettext_for(worker.locale)
    text = order_text(session, ctx, case, task, worker.locale,
                      header=_("✅ You accepted work order {number}").format(number=case.number))
    text += "\n\n" + _("When the problem is solved, press Complete and send photos and your location.")
    message_id = event.actor_message_id or offer_message_id(session, session.get(WorkOffer, event.offer_id))
    edit_own_message(session, ctx, worker, case, message_id, text, task_keyboard(_, task.id))


def order_returned(session: Session, ctx: ServiceContext, event: OrderReturned) -> None:
    """The message the worker returned from says so (buttons gone); then the reply to their reason."""
    worker = session.get(Person, event.worker_id)
    case = session.get(Case, event.case_id)
    _ = gettext_for(worker.locale)
    offer = session.get(WorkOffer, event.offer_id) if event.offer_id is not None else None
    edit_own_message(session, ctx, worker, case, event.actor_message_id or offer_message_id(session, offer),
                     _("↩️ You returned work order {number}.").format(number=case.number) + "\n"
                     + _("Reason: {reason}").format(reason=html.escape(event.reason)))
    tell(session, ctx, worker, _("Returned: work order {number} goes back to the dispatcher. Thank you for "
                                 "saying why.").format(number=case.number))


def duty_changed(session: Session, ctx: ServiceContext, event: DutyChanged) -> None:
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    if event.on_duty:
        text = _("🟢 You are on duty. New work orders of your area will come here.")
    else:
        text = _("⚪ You are off duty and will get no new work orders. Orders you hold stay yours.")
        if event.withdrawn:
            text += "\n" + _("Offers passed on to others: {count}.").format(count=event.withdrawn)
    tell(session, ctx, worker, text)


def edit_own_message(session: Session, ctx: ServiceContext, worker: Person, case: Case, message_id: int | None,
                     text: str, reply_markup: dict | None = None) -> None:
    """Edit the message the worker pressed a button on (its id comes with the button press)."""
    if message_id is None or worker.telegram_user_id is None:
        return
    payload: dict = {"message_id": message_id, "text": text, "parse_mode": "HTML", "link_preview_options": NO_PREVIEW}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    enqueue(session, chat_id=worker.telegram_user_id, method="editMessageText", payload=payload,
            now=ctx.clock.now(), person_id=worker.id, case_id=case.id)


def offer_message_id(session: Session, offer: WorkOffer | None) -> int | None:
    """The Telegram id of the offer's work-order message, once it was sent."""
    if offer is None or offer.message_notification_id is None:
        return None
    row = session.get(Notification, offer.message_notification_id)
    return row.telegram_message_id if row is not None else None


RENDERERS: EventTable = {
    OfferMade: [offer_made],
    PatrolOrderAssigned: [patrol_order_assigned],
    DispatchEscalated: [dispatch_escalated],
    OrderAccepted: [order_accepted],
    OrderReturned: [order_returned],
    DutyChanged: [duty_changed],
}
