"""WeCom renderers of verification, closure, escalation pings and staff accounts.

The proof card is a template card with Approve / Reject, then the proof photos. A WeCom card is not
edited once decided: whoever else held a card for the case gets the decision as a message, and a press
on an old card is refused by the service (its version no longer matches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlmodel import Session, select

from models.events.staff import InvitationRedeemed, WorkerDeactivated
from models.events.supervision import CaseEscalated, ClosedBySource, ClosureApproved, ClosureRejected, VerificationRequested
from models.events.work import DispatchEscalated
from models.lifecycle import Role
from models.tables import Area, Case, Person
from models.work import CaseTask, EscalationReason, VerificationRequest
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.names import department_name, localized
from services.privacy import mask_text
from services.verification_card import proof_card
from wecom import texts
from wecom.actions import Gettext, task_buttons, verify_buttons
from wecom.formats import button_card, image_message, text_message
from wecom.outbox import queue, uses_wecom
from wecom.renderers_work import _person, tell


def card_lines(card, locale: str, timezone: str) -> list[str]:  # noqa: ANN001 - services.verification_card.ProofCard
    """The proof card's lines below its title (bot/renderers/supervision_verification.py `render_card`)."""
    _ = gettext_for(locale)
    lines = [_("Category: {category}").format(category=card.category), _("Grid: {grid}").format(grid=card.grid)]
    if card.address:
        lines.append(_("Address: {address}").format(address=card.address))
    if card.description:
        lines.append(_("Description: {description}").format(description=mask_text(card.description[:300])))
    for part in card.parts:
        lines.append(_("— {department}: {worker}").format(department=part.department, worker=part.worker_name))
        lines.append(_("Photos: {count}").format(count=len(part.photo_paths)))
        if part.distance_m is not None:
            kind = _("live location") if part.live else _("static location")
            lines.append(_("Location: {distance} m from the case point ({kind}, accuracy {accuracy})").format(
                distance=round(part.distance_m), kind=kind,
                accuracy=_("±{metres} m").format(metres=round(part.accuracy_m)) if part.accuracy_m is not None
                else _("not reported")))
        if part.flagged:
            lines.append(_("⚠️ Flagged by the worker: {problems}").format(problems=", ".join(part.problems)))
        lines.append(_("Submitted: {at}").format(at=texts.local_time(part.submitted_at, timezone)))
    return lines


def verification_requested(session: Session, ctx: ServiceContext, event: VerificationRequested) -> None:
    supervisor = _person(session, event.supervisor_id)
    if supervisor is None:
        return
    case = session.get(Case, event.case_id)
    card = proof_card(session, case, supervisor.locale)
    _ = gettext_for(supervisor.locale)
    now = ctx.clock.now()
    queue(session, supervisor, button_card(
        title=_("🔍 Please verify case {number}").format(number=card.number),
        sub_title="\n".join(card_lines(card, supervisor.locale, ctx.timezone)),
        buttons=verify_buttons(_, case.id, event.case_version)), now=now, case_id=case.id)
    for part in card.parts:
        for path in part.photo_paths:
            queue(session, supervisor, image_message(path), now=now, case_id=case.id)


def _tell_supervisors(session: Session, ctx: ServiceContext, event, render: Callable[[Gettext], str]) -> None:  # noqa: ANN001
    """Each WeCom supervisor who held a card for this round learns the decision."""
    seen: set[int] = set()
    for card_id in event.card_ids:
        request = session.get(VerificationRequest, card_id)
        supervisor = _person(session, request.supervisor_id) if request is not None else None
        if supervisor is None or supervisor.id in seen:
            continue
        seen.add(supervisor.id)
        tell(session, ctx, supervisor, render(gettext_for(supervisor.locale)), case_id=event.case_id)


def _tell_workers(session: Session, ctx: ServiceContext, case_id: int, render: Callable[[Gettext], str], *,
                  with_task_card: bool = False) -> None:
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case_id, CaseTask.assignee_id.is_not(None))).all()
    seen: set[int] = set()
    for task in tasks:
        worker = _person(session, task.assignee_id)
        if worker is None or worker.id in seen:
            continue
        seen.add(worker.id)
        _ = gettext_for(worker.locale)
        if with_task_card:
            message = button_card(title=render(_).split("\n", 1)[0], sub_title=render(_).partition("\n")[2],
                                  buttons=task_buttons(_, task.id, can_return=False))
        else:
            message = text_message(render(_))
        queue(session, worker, message, now=ctx.clock.now(), case_id=case_id)


def closure_approved(session: Session, ctx: ServiceContext, event: ClosureApproved) -> None:
    supervisor = session.get(Person, event.supervisor_id)
    at = texts.local_time(ctx.clock.now(), ctx.timezone)
    _tell_supervisors(session, ctx, event, lambda _: _("✅ Case {number} approved and closed by {name} ({at}).").format(
        number=event.case_number, name=supervisor.display_name, at=at))
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "✅ Case {number} was verified and closed. Thank you!").format(number=event.case_number))


def closure_rejected(session: Session, ctx: ServiceContext, event: ClosureRejected) -> None:
    supervisor = session.get(Person, event.supervisor_id)
    others = [cid for cid in event.card_ids
              if (r := session.get(VerificationRequest, cid)) is not None and r.supervisor_id != supervisor.id]
    _tell_supervisors(session, ctx, replace(event, card_ids=tuple(others)), lambda _: _(
        "🔁 Case {number} sent back for rework by {name}: {reason}").format(
        number=event.case_number, name=supervisor.display_name, reason=event.reason))
    _tell_workers(session, ctx, event.case_id, lambda _: "\n".join([
        _("🔁 Rework: case {number} was not accepted by the supervisor.").format(number=event.case_number),
        _("Reason: {reason}").format(reason=event.reason),
        _("Fix it, then press Complete and send new photos and your location."),
    ]), with_task_card=True)
    if uses_wecom(supervisor):
        tell(session, ctx, supervisor, gettext_for(supervisor.locale)(
            "Case {number} sent back for rework; the worker was told why.").format(number=event.case_number),
            case_id=event.case_id)


def closed_by_source(session: Session, ctx: ServiceContext, event: ClosedBySource) -> None:
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "✅ Case {number} was closed: the source reports the problem gone. Thank you!").format(number=event.case_number))


def case_escalated(session: Session, ctx: ServiceContext, event: CaseEscalated) -> None:
    """The escalation ping: holding workers are reminded, supervisors get the header and the case's place."""
    case = session.get(Case, event.case_id)
    for person_id in (*event.worker_ids, *event.supervisor_ids):
        person = _person(session, person_id)
        if person is None:
            continue
        _ = gettext_for(person.locale)
        text = texts.ping_header(case.number, event.after, _, repeat=event.repeat)
        if person_id in event.worker_ids:
            text += "\n" + _("Please accept or act on it now, or ask for an extension with /extend {number}.").format(
                number=case.number)
        else:
            text += "\n" + _("Grid: {grid}").format(grid=texts.grid_name(session, case.grid_code, person.locale))
        tell(session, ctx, person, text, case_id=case.id)


def dispatch_escalated(session: Session, ctx: ServiceContext, event: DispatchEscalated) -> None:
    case = session.get(Case, event.case_id)
    for person_id in event.supervisor_ids:
        person = _person(session, person_id)
        if person is None:
            continue
        _ = gettext_for(person.locale)
        if event.reason is EscalationReason.NO_WORKER:
            text = _("⚠️ No worker available for case {number}").format(number=case.number) + "\n" + _(
                "Grid: {grid}").format(grid=texts.grid_name(session, case.grid_code, person.locale))
        else:
            text = _("⚠️ Case {number} awaits verification, but no supervisor of the area can verify it "
                     "(the only ones handled it).").format(number=case.number)
        tell(session, ctx, person, text, case_id=case.id)


def invitation_redeemed(session: Session, ctx: ServiceContext, event: InvitationRedeemed) -> None:
    person = _person(session, event.person_id)
    if person is None:
        return
    _ = gettext_for(person.locale)
    area = localized(session.exec(select(Area).where(Area.code == event.area_code)).first(), person.locale,
                     event.area_code)
    if event.role is Role.WORKER:
        department = department_name(session, person.department_code, person.locale) if person.department_code else ""
        text = _("Welcome, {name}! You are now a grid worker of {area} ({department}).").format(
            name=event.display_name, area=area, department=department or "—")
    else:
        text = _("Welcome, {name}! You are now a supervisor of {area}.").format(name=event.display_name, area=area)
    tell(session, ctx, person, text)


def worker_deactivated(session: Session, ctx: ServiceContext, event: WorkerDeactivated) -> None:
    worker = _person(session, event.worker_id)
    if worker is not None:
        tell(session, ctx, worker, gettext_for(worker.locale)(
            "Your worker account was deactivated by {name}. Your open orders went back to dispatch.").format(
            name=event.by_name))


RENDERERS: EventTable = {
    VerificationRequested: [verification_requested],
    ClosureApproved: [closure_approved],
    ClosureRejected: [closure_rejected],
    ClosedBySource: [closed_by_source],
    CaseEscalated: [case_escalated],
    DispatchEscalated: [dispatch_escalated],
    InvitationRedeemed: [invitation_redeemed],
    WorkerDeactivated: [worker_deactivated],
}
