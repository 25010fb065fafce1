"""WeCom renderers of welfare checks: the worker's receipt of an outcome, and the alert to the street's
supervisors on WeCom (bot/renderers/alarms.py words both; the family and the 居委会 are told there)."""

from __future__ import annotations

from sqlmodel import Session

from models.elders import Elder, WelfareCheck, WelfareOutcome
from models.events.alarms import WelfareEscalated, WelfareOutcomeRecorded
from models.tables import Case, Person
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from wecom import texts
from wecom.actions import Gettext, outcome_labels
from wecom.formats import text_message
from wecom.outbox import queue, uses_wecom


def welfare_outcome_recorded(session: Session, ctx: ServiceContext, event: WelfareOutcomeRecorded) -> None:
    worker = session.get(Person, event.worker_id)
    if not uses_wecom(worker):
        return
    _ = gettext_for(worker.locale)
    outcome = WelfareOutcome(event.outcome)
    lines = [_("✅ Outcome recorded for case {number}: {outcome} ({distance} m from the home).").format(
        number=session.get(Case, event.case_id).number, outcome=outcome_labels(_)[outcome],
        distance=round(event.distance_m))]
    if outcome is WelfareOutcome.NO_ANSWER:
        lines.append(_("The street supervisor and the neighbourhood committee are told now. Stay near if you "
                       "can, and record the outcome again when the door is opened."))
    else:
        lines.append(_("A supervisor will verify it."))
    if event.notice_ids:
        lines.append(_("Family contacts to be told: {count}.").format(count=len(event.notice_ids)))
    queue(session, worker, text_message("\n".join(lines)), now=ctx.clock.now(), case_id=event.case_id)


def welfare_escalated(session: Session, ctx: ServiceContext, event: WelfareEscalated) -> None:
    case = session.get(Case, event.case_id)
    check = session.get(WelfareCheck, event.check_id)
    elder = session.get(Elder, check.elder_id)
    for person in (session.get(Person, pid) for pid in event.supervisor_ids):
        if uses_wecom(person):
            text = _alert(session, case, check, elder, event.reason, gettext_for(person.locale), person.locale)
            queue(session, person, text_message(text), now=ctx.clock.now(), case_id=case.id)


def _alert(session: Session, case: Case, check: WelfareCheck, elder: Elder, reason: str, _: Gettext,
           locale: str) -> str:
    if reason == "no_answer":
        worker = session.get(Person, check.worker_id) if check.worker_id else None
        head = _("🚨 Welfare check {number}: nobody answers at the door. {worker} is on site.").format(
            number=case.number, worker=worker.display_name if worker else "—")
    elif reason.startswith("accept"):
        head = _("🚨 Welfare check {number}: nobody has accepted it yet.").format(number=case.number)
    else:
        head = _("🚨 Welfare check {number}: not finished in time.").format(number=case.number)
    lines = [head, _("Elder: {name}").format(name=elder.name or "—"),
             _("Home: {address}").format(address=elder.address or "—"),
             _("Grid: {grid}").format(grid=texts.grid_name(session, case.grid_code, locale))]
    lines += texts.household_lines(elder, _)
    return "\n".join(lines)


RENDERERS: EventTable = {
    WelfareOutcomeRecorded: [welfare_outcome_recorded],
    WelfareEscalated: [welfare_escalated],
}
