"""Telegram renderers of staff accounts: the notice to a worker who was deactivated.

`InvitationRedeemed` has no renderer yet: the welcome and the new menu are still sent by
handlers/worker.py after the redeem (services/staff_menus.queue_menu_for).
"""

from __future__ import annotations

import html

from sqlmodel import Session

from models.events.staff import WorkerDeactivated
from models.tables import Person
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


RENDERERS: EventTable = {WorkerDeactivated: [worker_deactivated]}
