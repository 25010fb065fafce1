"""Telegram renderers of life-safety alarms: a welfare check's outcome (to the worker and the family),
its escalation (to the street's supervisors and the 居委会), and gaps in the duty roster."""

from __future__ import annotations

import html

from sqlmodel import Session

from bot.alarm_ui import outcome_labels
from bot.renderers.work_text import grid_name, local_time, tell
from bot.worker_ui import remove_reply_keyboard
from models.elders import AreaContact, Elder, FamilyNotice, WelfareCheck, WelfareOutcome
from models.events.alarms import CoverageGapFound, WelfareEscalated, WelfareOutcomeRecorded
from models.tables import Case, Person
from onegrid.i18n import N_, gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue_text

# What the family reads, per outcome (msgids: extracted from here, translated per reader).
FAMILY_TEXT = {
    WelfareOutcome.SAFE: N_("OneGrid: a grid worker visited {name} at home after a sensor alarm ({time}). "
                            "{name} is safe."),
    WelfareOutcome.NEEDS_HELP: N_("OneGrid: a grid worker visited {name} at home after a sensor alarm ({time}). "
                                  "{name} needs help; an ambulance (120) was called."),
    WelfareOutcome.NOT_HOME: N_("OneGrid: a grid worker visited {name} at home after a sensor alarm ({time}). "
                                "{name} was not at home."),
    WelfareOutcome.NO_ANSWER: N_("OneGrid: a grid worker went to {name}'s home after a sensor alarm ({time}), "
                                 "but nobody answers. The street and the neighbourhood committee are told; "
                                 "please call {name} or come if you can."),
}


def welfare_outcome_recorded(session: Session, ctx: ServiceContext, event: WelfareOutcomeRecorded) -> None:
    """The worker's receipt (the location button goes), then each family contact with a chat is told."""
    worker = session.get(Person, event.worker_id)
    case = session.get(Case, event.case_id)
    outcome = WelfareOutcome(event.outcome)
    _ = gettext_for(worker.locale)
    receipt = _("✅ Outcome recorded for case {number}: {outcome} ({distance} m from the home).").format(
        number=case.number, outcome=outcome_labels(_)[outcome], distance=round(event.distance_m))
    if outcome is WelfareOutcome.NO_ANSWER:
        receipt += "\n" + _("The street supervisor and the neighbourhood committee are told now. Stay near if you "
                            "can, and record the outcome again when the door is opened.")
    else:
        receipt += "\n" + _("A supervisor will verify it.")
    if event.notice_ids:
        receipt += "\n" + _("Family contacts to be told: {count}.").format(count=len(event.notice_ids))
    tell(session, ctx, worker, receipt, remove_reply_keyboard())
    check = session.get(WelfareCheck, event.check_id)
    elder = session.get(Elder, check.elder_id)
    _family = gettext_for(ctx.settings.default_locale)
    when = local_time(check.outcome_at, ctx.timezone)
    for notice in (session.get(FamilyNotice, nid) for nid in event.notice_ids):
        if notice is None or notice.chat_id is None:
            continue  # no chat: recorded as sms_not_configured, nothing can be sent from here
        enqueue_text(session, chat_id=notice.chat_id, now=ctx.clock.now(), case_id=case.id,
                     text=_family(FAMILY_TEXT[outcome]).format(name=html.escape(elder.name or "—"), time=when))


def welfare_escalated(session: Session, ctx: ServiceContext, event: WelfareEscalated) -> None:
    """The street's supervisors and the 居委会 contacts with a chat: who, where, and who to call."""
    case = session.get(Case, event.case_id)
    check = session.get(WelfareCheck, event.check_id)
    elder = session.get(Elder, check.elder_id)
    for person in (session.get(Person, pid) for pid in event.supervisor_ids):
        if person is not None:
            tell(session, ctx, person, _escalation_text(session, ctx, case, check, elder, event.reason, person.locale))
    for contact in (session.get(AreaContact, cid) for cid in event.contact_ids):
        if contact is not None and contact.chat_id is not None:
            enqueue_text(session, chat_id=contact.chat_id, now=ctx.clock.now(), case_id=case.id,
                         text=_escalation_text(session, ctx, case, check, elder, event.reason, contact.locale))


def _escalation_text(session: Session, ctx: ServiceContext, case: Case, check: WelfareCheck, elder: Elder,
                     reason: str, locale: str) -> str:
    _ = gettext_for(locale)
    if reason == "no_answer":
        worker = session.get(Person, check.worker_id) if check.worker_id else None
        head = _("🚨 Welfare check {number}: nobody answers at the door. {worker} is on site.").format(
            number=case.number, worker=html.escape(worker.display_name if worker else "—"))
    elif reason.startswith("accept"):
        head = _("🚨 Welfare check {number}: nobody has accepted it yet.").format(number=case.number)
    else:
        head = _("🚨 Welfare check {number}: not finished in time.").format(number=case.number)
    lines = [head,
             _("Elder: {name}").format(name=html.escape(elder.name or "—")),
             _("Home: {address}").format(address=html.escape(elder.address or "—")),
             _("Grid: {grid}").format(grid=html.escape(grid_name(session, case.grid_code, locale)))]
    if elder.key_holder_name or elder.key_holder_phone:
        lines.append(_("Key holder: {name} {phone}").format(name=html.escape(elder.key_holder_name),
                                                            phone=html.escape(elder.key_holder_phone)))
    for contact in elder.contacts or []:
        lines.append(_("Family: {name} {phone}").format(name=html.escape(contact.get("name", "")),
                                                        phone=html.escape(contact.get("phone", ""))))
    return "\n".join(lines)


def coverage_gap_found(session: Session, ctx: ServiceContext, event: CoverageGapFound) -> None:
    """Each street supervisor: which area has nobody on call, from when to when."""
    for person in (session.get(Person, pid) for pid in event.supervisor_ids):
        if person is None:
            continue
        _ = gettext_for(person.locale)
        area = html.escape(grid_name(session, event.area_code, person.locale))
        if event.uncovered_now and event.open_ended:
            text = _("⚠️ Duty roster gap: nobody is on call for {area} now, nor in the next {hours} hours. Alarms "
                     "there reach no one; put someone on the roster.").format(
                area=area, hours=ctx.settings.coverage_lookahead_hours)
        elif event.uncovered_now:
            text = _("⚠️ Duty roster gap: nobody is on call for {area} now, until {end}. Alarms there reach no "
                     "one; put someone on the roster.").format(area=area, end=local_time(event.ends_at, ctx.timezone))
        else:
            text = _("⚠️ Duty roster gap: nobody is on call for {area} from {start} to {end}. Put someone on the "
                     "roster before then.").format(area=area, start=local_time(event.starts_at, ctx.timezone),
                                                   end=local_time(event.ends_at, ctx.timezone))
        tell(session, ctx, person, text)


RENDERERS: EventTable = {
    WelfareOutcomeRecorded: [welfare_outcome_recorded],
    WelfareEscalated: [welfare_escalated],
    CoverageGapFound: [coverage_gap_found],
}
