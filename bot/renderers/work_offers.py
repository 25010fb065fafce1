"""Telegram renderers of dispatch and of a worker's answers: the work order, accept, return, duty, escalation."""

from __future__ import annotations

import html

from sqlmodel import Session

from bot.renderers.work_text import (
    NO_PREVIEW,
    category_name,
    department_name,
    fit_caption,
    grid_name,
    order_caption,
    order_text,
    tell,
)
from bot.alarm_ui import outcome_keyboard
from bot.worker_ui import offer_keyboard, task_keyboard
from models.events.work import DispatchEscalated, DutyChanged, OfferMade, OrderAccepted, OrderReturned, PatrolOrderAssigned
from models.tables import Case, Notification, Person, Photo
from models.work import CaseTask, EscalationReason, WorkOffer
from onegrid.i18n import gettext_for
from services import batch_reads, dispatch, welfare_calls
from services.areas import supervisor_group
from services.bus import EventTable
from services.context import ServiceContext
from services.db import insert_now
from services.navigation import navigate_url
from services.notify import enqueue

# -- the work order -------------------------------------------------------------------------------------


def offer_made(session: Session, ctx: ServiceContext, event: OfferMade) -> None:
    """The work order as ONE message: the site photo with the order as its caption, or the order as text
    when the case has no photo; buttons Accept / Return and Navigate (a URL: the place is one tap away).

    The offer remembers its notification row, so a retraction can edit or unqueue it.
    """
    offer = session.get(WorkOffer, event.offer_id)
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    header = _("🆕 Work order {number}").format(number=case.number)
    keyboard = offer_keyboard(_, offer.id, navigate_url=navigate_url(case))
    photo = report_photo(session, ctx, case)
    if photo is not None:
        method, payload = "sendPhoto", {
            "photo_path": photo.path, "parse_mode": "HTML", "reply_markup": keyboard,
            "caption": order_caption(session, ctx, case, task, worker.locale, header=header)}
    else:
        method, payload = "sendMessage", {
            "text": order_text(session, ctx, case, task, worker.locale, header=header), "parse_mode": "HTML",
            "link_preview_options": NO_PREVIEW, "reply_markup": keyboard}
    message = enqueue(session, chat_id=worker.telegram_user_id, method=method, now=ctx.clock.now(),
                      person_id=worker.id, case_id=case.id, payload=payload)
    if message in session:  # else not a Telegram user: no row
        insert_now(session, message)  # its id now, without flushing the whole session
    # The photo and the place are in the order itself: no follow-up messages.
    dispatch.remember_order_message(session, offer, message.id)


def report_photo(session: Session, ctx: ServiceContext, case: Case) -> Photo | None:
    """The reporter's first photo whose cleaned copy is on disk (only that copy is ever sent on)."""
    for photo in batch_reads.report_photos(session, case.id):
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
    offer = session.get(WorkOffer, event.offer_id)
    message_id = event.actor_message_id or offer_message_id(session, offer)
    header = _("✅ You accepted work order {number}").format(number=case.number)
    footer = "\n\n" + _("When the problem is solved, press Complete and send photos and your location.")
    keyboard = task_keyboard(_, task.id, navigate_url=navigate_url(case))
    if welfare_calls.check_of(session, case.id) is not None:  # a welfare check ends with an outcome, not a photo
        footer = "\n\n" + _("On site, press what you found, then share your location there.")
        keyboard = outcome_keyboard(_, task.id, navigate_url=navigate_url(case))
    caption = is_photo_order(session, offer, message_id)
    text = (order_caption(session, ctx, case, task, worker.locale, header=header, footer=footer) if caption
            else order_text(session, ctx, case, task, worker.locale, header=header) + footer)
    edit_own_message(session, ctx, worker, case, message_id, text, keyboard, caption=caption)


def order_returned(session: Session, ctx: ServiceContext, event: OrderReturned) -> None:
    """The message the worker returned from says so (buttons gone); then the reply to their reason."""
    worker = session.get(Person, event.worker_id)
    case = session.get(Case, event.case_id)
    _ = gettext_for(worker.locale)
    offer = session.get(WorkOffer, event.offer_id) if event.offer_id is not None else None
    message_id = event.actor_message_id or offer_message_id(session, offer)
    edit_own_message(session, ctx, worker, case, message_id,
                     _("↩️ You returned work order {number}.").format(number=case.number) + "\n"
                     + _("Reason: {reason}").format(reason=html.escape(event.reason)),
                     caption=is_photo_order(session, offer, message_id))
    tell(session, ctx, worker, _("Returned: work order {number} goes back to the dispatcher. Thank you for "
                                 "saying why.").format(number=case.number))


def duty_changed(session: Session, ctx: ServiceContext, event: DutyChanged) -> None:
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    if event.on_duty:
        text = _("🟢 You are on duty. New work orders of your area will come here.")
    else:
        if event.handed_back or event.kept:  # what became of the held orders follows
            text = _("⚪ You are off duty and will get no new work orders.")
        else:
            text = _("⚪ You are off duty and will get no new work orders. Orders you hold stay yours.")
        if event.withdrawn:
            text += "\n" + _("Offers passed on to others: {count}.").format(count=event.withdrawn)
        if event.handed_back:
            text += "\n" + _("Held orders handed back to the dispatcher: {count}.").format(count=event.handed_back)
        if event.kept:
            text += "\n" + _("Held orders you keep: {count}. If you are not on duty again within {minutes} min, "
                              "they go back to the dispatcher.").format(count=event.kept, minutes=event.grace_minutes)
    tell(session, ctx, worker, text)


def edit_own_message(session: Session, ctx: ServiceContext, worker: Person, case: Case, message_id: int | None,
                     text: str, reply_markup: dict | None = None, *, caption: bool = False) -> None:
    """Edit the message the worker pressed a button on (its id comes with the button press).

    `caption`: that message is a work order's photo, whose caption is edited (held to Telegram's limit).
    """
    if message_id is None or worker.telegram_user_id is None:
        return
    if caption:
        method = "editMessageCaption"
        payload: dict = {"message_id": message_id, "caption": fit_caption(text), "parse_mode": "HTML"}
    else:
        method = "editMessageText"
        payload = {"message_id": message_id, "text": text, "parse_mode": "HTML", "link_preview_options": NO_PREVIEW}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    enqueue(session, chat_id=worker.telegram_user_id, method=method, payload=payload,
            now=ctx.clock.now(), person_id=worker.id, case_id=case.id)


def offer_message_id(session: Session, offer: WorkOffer | None) -> int | None:
    """The Telegram id of the offer's work-order message, once it was sent."""
    row = order_message(session, offer)
    return row.telegram_message_id if row is not None else None


def order_message(session: Session, offer: WorkOffer | None) -> Notification | None:
    """The notification row of the offer's work-order message (None for an order never sent as one)."""
    if offer is None or offer.message_notification_id is None:
        return None
    return session.get(Notification, offer.message_notification_id)


def is_photo_order(session: Session, offer: WorkOffer | None, message_id: int | None) -> bool:
    """True when `message_id` is the offer's work order sent as a photo (its text is then a caption).

    A row not yet marked sent counts as that message: the worker can only have pressed a button of it.
    """
    row = order_message(session, offer)
    return (row is not None and row.method == "sendPhoto"
            and row.telegram_message_id in (None, message_id))


RENDERERS: EventTable = {
    OfferMade: [offer_made],
    PatrolOrderAssigned: [patrol_order_assigned],
    DispatchEscalated: [dispatch_escalated],
    OrderAccepted: [order_accepted],
    OrderReturned: [order_returned],
    DutyChanged: [duty_changed],
}
