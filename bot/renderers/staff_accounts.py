"""Telegram renderers of staff accounts: the welcome of a redeemed invitation, the notice of a deactivation."""

from __future__ import annotations

import html

from sqlmodel import Session, select

from bot.renderers.work_text import department_name, localized
from models.events.staff import InvitationRedeemed, WorkerDeactivated
from models.lifecycle import Role
from models.tables import Area, Person
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue


def worker_deactivated(session: Session, ctx: ServiceContext, event: WorkerDeactivated) -> None:
    worker = session.get(Person, event.worker_id)
    if worker is None or worker.telegram_user_id is None:
        return
    _ = gettext_for(worker.locale)
    text = _("Your worker account was deactivated by {name}. Your open orders went back to dispatch.").format(
        name=html.escape(event.by_name))
    enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=ctx.clock.now(), person_id=worker.id,
            payload={"text": text, "parse_mode": "HTML"})


def invitation_redeemed(session: Session, ctx: ServiceContext, event: InvitationRedeemed) -> None:
    """Welcome the new worker or supervisor in their language, saying what to do first."""
    person = session.get(Person, event.person_id)
    if person is None or person.telegram_user_id is None:
        return
    _ = gettext_for(person.locale)
    area_row = session.exec(select(Area).where(Area.code == event.area_code)).first()
    name, area = html.escape(event.display_name), html.escape(localized(area_row, person.locale, event.area_code))
    if event.role is Role.WORKER:
        department = department_name(session, person.department_code, person.locale) if person.department_code else ""
        text = _("Welcome, {name}! You are now a grid worker of {area} ({department}).").format(
            name=name, area=area, department=html.escape(department or "—"))
        text += "\n" + _("Send /duty to go on duty and receive work orders; /tasks lists your orders.")
    else:
        text = _("Welcome, {name}! You are now a supervisor of {area}.").format(name=name, area=area)
        text += "\n" + _("You will receive proof cards to verify; /workers lists the workers of your area.")
    enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=ctx.clock.now(), person_id=person.id,
            payload={"text": text, "parse_mode": "HTML"})


RENDERERS: EventTable = {WorkerDeactivated: [worker_deactivated], InvitationRedeemed: [invitation_redeemed]}
