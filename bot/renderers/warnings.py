"""Telegram renderers of warnings (预警): the warning with its Acknowledge button, the acknowledgement,
the reminders to workers who have not acknowledged and the list of them to the area's supervisors."""

from __future__ import annotations

import html
from collections.abc import Callable

from sqlmodel import Session, select

from bot.campaign_ui import ack_keyboard
from bot.renderers.drill import drill_prefix
from bot.renderers.work_text import local_time
from models.campaigns import AreaWarning, WarningLevel, WarningRecipient
from models.events.campaigns import WarningAcknowledged, WarningIssued, WarningReminderDue
from models.tables import Area, Person
from onegrid.i18n import N_, gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.dispatch_pool import supervisors_of
from services.names import localized
from services.notify import enqueue

Gettext = Callable[[str], str]

LEVELS = {
    WarningLevel.BLUE: N_("🔵 Blue"),
    WarningLevel.YELLOW: N_("🟡 Yellow"),
    WarningLevel.ORANGE: N_("🟠 Orange"),
    WarningLevel.RED: N_("🔴 Red"),
}


def area_label(session: Session, code: str, locale: str) -> str:
    area = session.exec(select(Area).where(Area.code == code)).first()
    name = localized(area, locale, code)
    return html.escape(name if name == code else f"{name} ({code})")


def warning_text(session: Session, ctx: ServiceContext, warning: AreaWarning, _: Gettext, locale: str) -> str:
    """The warning as its workers read it."""
    return drill_prefix(_, warning.drill) + _("⚠️ {level} warning for {area}\n{text}\nIssued at {time}.").format(
        level=_(LEVELS[WarningLevel(warning.level)]), area=area_label(session, warning.area_code, locale),
        text=html.escape(warning.text), time=local_time(warning.issued_at, ctx.timezone))


def _to_recipient(session: Session, ctx: ServiceContext, row: WarningRecipient, warning: AreaWarning,
                  head: Callable[[Gettext], str]) -> None:
    worker = session.get(Person, row.worker_id)
    if worker is None or worker.telegram_user_id is None:
        return
    _ = gettext_for(worker.locale)
    text = head(_) + warning_text(session, ctx, warning, _, worker.locale) + "\n" + _(
        "Tap Acknowledge once you have read it.")
    enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=ctx.clock.now(), person_id=worker.id,
            payload={"text": text, "parse_mode": "HTML", "reply_markup": ack_keyboard(_, row.id)})


def _to_supervisors(session: Session, ctx: ServiceContext, warning: AreaWarning,
                    text: Callable[[Gettext, str], str]) -> None:
    """The area's supervisors (nearest level with any) and the supervisor who issued it."""
    people = supervisors_of(session, warning.area_code)
    issuer = session.get(Person, warning.issued_by_id) if warning.issued_by_id else None
    if issuer is not None and issuer.id not in {p.id for p in people}:
        people.append(issuer)
    for person in people:
        _ = gettext_for(person.locale)
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
                person_id=person.id, payload={"text": text(_, person.locale), "parse_mode": "HTML"})


def warning_issued(session: Session, ctx: ServiceContext, event: WarningIssued) -> None:
    warning = session.get(AreaWarning, event.warning_id)
    for recipient_id in event.recipient_ids:
        _to_recipient(session, ctx, session.get(WarningRecipient, recipient_id), warning, lambda _: "")

    def confirmation(_: Gettext, locale: str) -> str:
        head = drill_prefix(_, event.drill) + _("⚠️ {level} warning #{id} issued to {area}.").format(
            level=_(LEVELS[event.level]), id=event.warning_id, area=area_label(session, event.area_code, locale))
        if not event.recipient_ids:
            return head + "\n" + _("Nobody is on duty there to receive it.")
        return head + "\n" + _("{count} on-duty workers were told. /warnings shows who has not acknowledged.").format(
            count=len(event.recipient_ids))

    _to_supervisors(session, ctx, warning, confirmation)


def warning_acknowledged(session: Session, ctx: ServiceContext, event: WarningAcknowledged) -> None:
    """Edit the pressed message: the warning, acknowledged, without the button."""
    worker = session.get(Person, event.worker_id)
    warning = session.get(AreaWarning, event.warning_id)
    if worker is None or worker.telegram_user_id is None:
        return
    _ = gettext_for(worker.locale)
    text = warning_text(session, ctx, warning, _, worker.locale) + "\n" + _("✅ Acknowledged at {time}.").format(
        time=local_time(ctx.clock.now(), ctx.timezone))
    if event.message_id is None:
        enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
                person_id=worker.id, payload={"text": text, "parse_mode": "HTML"})
        return
    enqueue(session, chat_id=worker.telegram_user_id, method="editMessageText", now=ctx.clock.now(),
            person_id=worker.id, payload={"message_id": event.message_id, "text": text, "parse_mode": "HTML"})


def warning_reminder_due(session: Session, ctx: ServiceContext, event: WarningReminderDue) -> None:
    warning = session.get(AreaWarning, event.warning_id)
    names = []
    for recipient_id in event.pending_recipient_ids:
        row = session.get(WarningRecipient, recipient_id)
        _to_recipient(session, ctx, row, warning, lambda _, n=row.reminders: _(
            "⏰ Reminder {number}: you have not acknowledged this warning yet.").format(number=n) + "\n")
        worker = session.get(Person, row.worker_id)
        names.append(html.escape(worker.display_name if worker else "—"))

    def listing(_: Gettext, locale: str) -> str:
        return drill_prefix(_, event.drill) + _(
            "⏰ {level} warning #{id} for {area}: {acknowledged} of {total} acknowledged.\n"
            "Not acknowledged yet: {names}. They were reminded.").format(
            level=_(LEVELS[WarningLevel(warning.level)]), id=warning.id,
            area=area_label(session, warning.area_code, locale), acknowledged=event.acknowledged, total=event.total,
            names=", ".join(names))

    _to_supervisors(session, ctx, warning, listing)


RENDERERS: EventTable = {
    WarningIssued: [warning_issued],
    WarningAcknowledged: [warning_acknowledged],
    WarningReminderDue: [warning_reminder_due],
}
