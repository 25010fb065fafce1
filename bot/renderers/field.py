"""Telegram renderers of field work beside the order: progress notes, off-duty handovers, camera snapshot links.

The wording of a progress note is shared by the worker's confirmation, the supervisor's cards and the
resident's /my (each in the reader's language; the worker's own words always masked, no worker named
to a resident).
"""

from __future__ import annotations

import html

from sqlmodel import Session

from bot.renderers.field_text import STAFF_LABELS
from bot.renderers.supervision_card import case_card
from bot.renderers.work_text import tell
from models.events.field import HeldOrdersReleased, ProgressNoted
from models.field import ProgressKind
from models.tables import Case, Person
from onegrid.i18n import gettext_for
from onegrid.wording import HANDED_BACK, NOT_BACK_IN_TIME
from services.bus import EventTable
from services.context import ServiceContext
from services.dispatch_pool import supervisors_of
from services.notify import enqueue


def progress_noted(session: Session, ctx: ServiceContext, event: ProgressNoted) -> None:
    """The worker's confirmation; for "needs another department", the case card to its supervisors."""
    worker = session.get(Person, event.worker_id)
    case = session.get(Case, event.case_id)
    kind = ProgressKind(event.kind)
    if worker is not None:
        _ = gettext_for(worker.locale)
        tell(session, ctx, worker, _("📝 Progress noted on case {number}: {label}.").format(
            number=case.number, label=_(STAFF_LABELS[kind])))
    if kind is not ProgressKind.NEEDS_DEPARTMENT:
        return
    name = worker.display_name if worker is not None else "—"
    for supervisor in supervisors_of(session, case.grid_code):
        _ = gettext_for(supervisor.locale)
        header = _("🏢 Case {number}: {worker} says another department is needed").format(
            number=case.number, worker=html.escape(name))
        enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
                person_id=supervisor.id, case_id=case.id,
                payload={"text": case_card(session, ctx, case, supervisor.locale, header=header),
                         "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}})


def held_orders_released(session: Session, ctx: ServiceContext, event: HeldOrdersReleased) -> None:
    """Tell the worker's supervisors which held orders went back to dispatch, and why."""
    worker = session.get(Person, event.worker_id)
    if worker is None:
        return
    numbers = ", ".join(event.case_numbers)
    for supervisor in supervisors_of(session, worker.area_code):
        _ = gettext_for(supervisor.locale)
        text = _(HANDED_BACK if event.handed_back else NOT_BACK_IN_TIME)
        enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
                person_id=supervisor.id, payload={"parse_mode": "HTML", "text": text.format(
                    worker=html.escape(worker.display_name), count=len(event.case_ids), numbers=numbers,
                    minutes=event.grace_minutes)})


RENDERERS: EventTable = {
    ProgressNoted: [progress_noted],
    HeldOrdersReleased: [held_orders_released],
}
