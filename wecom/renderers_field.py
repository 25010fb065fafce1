"""WeCom renderers of field work beside the order: a progress note's confirmation and, for "needs another
department", the case to the supervisors on WeCom; held orders released when their worker went off duty; the
answer to a patrol report. The same words as bot/renderers/field.py and bot/renderers/patrol.py."""

from __future__ import annotations

from sqlmodel import Session

import re
from collections.abc import Iterator

from models.events.field import HeldOrdersReleased, ProgressNoted
from models.events.patrol import PatrolReportFiled
from models.field import ProgressKind
from models.tables import Case, Person
from onegrid.i18n import gettext_for
from onegrid.wording import HANDED_BACK, NOT_BACK_IN_TIME
from services.bus import EventTable
from services.context import ServiceContext
from services.dispatch_pool import supervisors_of
from services.privacy import mask_text
from wecom import texts
from wecom.actions import Gettext
from wecom.formats import text_message
from wecom.outbox import queue, uses_wecom


def _supervisors_on_wecom(session: Session, area_code: str | None) -> Iterator[tuple[Person, Gettext]]:
    """The area's supervisors (services.dispatch_pool) who use WeCom, each with their language's gettext."""
    for supervisor in supervisors_of(session, area_code):
        if uses_wecom(supervisor):
            yield supervisor, gettext_for(supervisor.locale)


def progress_noted(session: Session, ctx: ServiceContext, event: ProgressNoted) -> None:
    worker = session.get(Person, event.worker_id)
    case = session.get(Case, event.case_id)
    kind = ProgressKind(event.kind)
    if uses_wecom(worker):
        _ = gettext_for(worker.locale)
        queue(session, worker, text_message(_("📝 Progress noted on case {number}: {label}.").format(
            number=case.number, label=_(texts.STAFF_NOTE_LABELS[kind]))), now=ctx.clock.now(), case_id=case.id)
    if kind is not ProgressKind.NEEDS_DEPARTMENT:
        return
    name = worker.display_name if worker is not None else "—"
    for supervisor, _ in _supervisors_on_wecom(session, case.grid_code):
        lines = [_("🏢 Case {number}: {worker} says another department is needed").format(number=case.number,
                                                                                          worker=name),
                 _("Category: {category}").format(category=texts.category_name(session, case.category_code,
                                                                               supervisor.locale)),
                 _("Grid: {grid}").format(grid=texts.grid_name(session, case.grid_code, supervisor.locale))]
        if case.address:
            lines.append(_("Address: {address}").format(address=case.address))
        if case.description:
            lines.append(_("Description: {description}").format(description=mask_text(case.description)[:300]))
        lines += texts.progress_lines(session, case, _, ctx.timezone)
        queue(session, supervisor, text_message("\n".join(lines)), now=ctx.clock.now(), case_id=case.id)


def held_orders_released(session: Session, ctx: ServiceContext, event: HeldOrdersReleased) -> None:
    worker = session.get(Person, event.worker_id)
    if worker is None:
        return
    for supervisor, _ in _supervisors_on_wecom(session, worker.area_code):
        text = _(HANDED_BACK if event.handed_back else NOT_BACK_IN_TIME)
        queue(session, supervisor, text_message(text.format(
            worker=worker.display_name, count=len(event.case_ids), numbers=", ".join(event.case_numbers),
            minutes=event.grace_minutes)), now=ctx.clock.now())


_TAG = re.compile(r"<[^>]+>")  # the Telegram msgids' bold: WeCom text is plain


def patrol_report_filed(session: Session, ctx: ServiceContext, event: PatrolReportFiled) -> None:
    worker = session.get(Person, event.worker_id)
    if not uses_wecom(worker):
        return
    _ = gettext_for(worker.locale)
    if event.handed_to_dispatch:
        text = _("📤 Case <b>{number}</b> registered from your patrol and handed to dispatch: the workers "
                 "of its department will get it. Thank you!")
    else:
        text = _("✅ Case <b>{number}</b> registered from your patrol. It is yours: the work order follows; "
                 "press Complete when the problem is solved.")
    queue(session, worker, text_message(_TAG.sub("", text).format(number=event.number)), now=ctx.clock.now(),
          case_id=event.case_id)


RENDERERS: EventTable = {
    PatrolReportFiled: [patrol_report_filed],
    ProgressNoted: [progress_noted],
    HeldOrdersReleased: [held_orders_released],
}
