"""Telegram renderer of the patrol events (models/events/patrol.py): the answer to a worker's patrol report.

The order itself (kept cases) is `PatrolOrderAssigned`, worded by bot/renderers/work_offers.py.
"""

from __future__ import annotations

from sqlmodel import Session

from bot.renderers.resident_outbox import Outgoing, card_done, queue
from models.events.patrol import PatrolReportFiled
from models.tables import Person
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext


def patrol_report_filed(session: Session, ctx: ServiceContext, event: PatrolReportFiled) -> None:
    """The card loses its buttons; the worker reads the case number and who handles it."""
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale if worker is not None else ctx.settings.default_locale)
    if event.handed_to_dispatch:
        text = _("📤 Case <b>{number}</b> registered from your patrol and handed to dispatch: the workers "
                 "of its department will get it. Thank you!").format(number=event.number)
    else:
        text = _("✅ Case <b>{number}</b> registered from your patrol. It is yours: the work order follows; "
                 "press Complete when the problem is solved.").format(number=event.number)
    queue(session, ctx, chat_id=event.reply_to.chat_id, person_id=event.worker_id, case_id=event.case_id,
          messages=[*card_done(event.reply_to), Outgoing(text, {"remove_keyboard": True})])


RENDERERS: EventTable = {PatrolReportFiled: [patrol_report_filed]}
