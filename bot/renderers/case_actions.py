"""Telegram renderers of cancel, merge, a resident's withdrawal, rework ordered without a card, and an
office's approval (models/events/case_actions.py): each recipient in their own language.

Workers whose orders were withdrawn are told by the work renderers (OfferRetracted / OrderWithdrawn);
followers learn a cancellation from the stage messages (bot/renderers/resident_stages.py).
"""

from __future__ import annotations

import html

from sqlmodel import Session, select

from bot.renderers.resident_views import status_label
from bot.renderers.supervision_card import case_card
from bot.renderers.supervision_verification import _edit_cards, _tell_workers
from bot.supervision_ui import case_end_row
from bot.renderers.work_text import local_time
from bot.worker_ui import task_keyboard
from models.events.case_actions import (
    CaseCancelled,
    CaseMerged,
    ClosedByOffice,
    ReportWithdrawn,
    ReworkOrdered,
    WithdrawalOutcome,
)
from models.lifecycle import Role
from models.tables import Person
from models.work import CaseTask, TaskStatus
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue, enqueue_text
from services.privacy import mask_text
from services.supervision_access import supervisor_and_case


def _reachable(session: Session, person_id: int | None) -> Person | None:
    person = session.get(Person, person_id) if person_id is not None else None
    return person if person is not None and person.telegram_user_id is not None else None


def _is_staff(person: Person) -> bool:
    return person.has_role(Role.SUPERVISOR) or person.has_role(Role.DISPATCHER)


def case_cancelled(session: Session, ctx: ServiceContext, event: CaseCancelled) -> None:
    """The supervisor who cancelled it gets a confirmation (a resident's withdrawal has its own reply)."""
    actor = _reachable(session, event.actor_person_id)
    if actor is None or not _is_staff(actor):
        return
    _ = gettext_for(actor.locale)
    enqueue_text(session, chat_id=actor.telegram_user_id, now=ctx.clock.now(), person_id=actor.id,
                 case_id=event.case_id, text=_("🚫 Case {number} is cancelled. Reason: {reason}").format(
                     number=event.case_number, reason=html.escape(event.reason)))


def case_merged(session: Session, ctx: ServiceContext, event: CaseMerged) -> None:
    """Each follower of the duplicate learns it now follows the surviving case; the supervisor is told it is done."""
    now = ctx.clock.now()
    for person_id in event.moved_person_ids:
        person = _reachable(session, person_id)
        if person is None or person.id == event.actor_person_id:
            continue
        _ = gettext_for(person.locale)
        enqueue_text(session, chat_id=person.telegram_user_id, now=now, person_id=person.id, case_id=event.into_case_id,
                     text=_("🔗 Case {number} was merged into case {into}, another report of the same problem. "
                            "You now follow case {into} and will be told its progress; /my shows it.").format(
                         number=event.case_number, into=event.into_number))
    actor = _reachable(session, event.actor_person_id)
    if actor is not None and _is_staff(actor):
        _ = gettext_for(actor.locale)
        enqueue_text(session, chat_id=actor.telegram_user_id, now=now, person_id=actor.id, case_id=event.case_id,
                     text=_("🔗 Case {number} is merged into {into}; its {count} follower(s) now follow {into}.").format(
                         number=event.case_number, into=event.into_number, count=len(event.moved_person_ids)))


def report_withdrawn(session: Session, ctx: ServiceContext, event: ReportWithdrawn) -> None:
    person = _reachable(session, event.person_id)
    if person is None:
        return
    _ = gettext_for(person.locale)
    if event.outcome is WithdrawalOutcome.CANCELLED:
        text = _("↩️ Your report {number} is withdrawn and the case is closed. Thank you for letting us know.")
    else:
        text = _("↩️ You no longer follow case {number}. Other residents reported the same problem, so it stays "
                 "open for them.")
    enqueue_text(session, chat_id=person.telegram_user_id, now=ctx.clock.now(), person_id=person.id,
                 case_id=event.case_id, text=text.format(number=event.case_number))


def rework_ordered(session: Session, ctx: ServiceContext, event: ReworkOrdered) -> None:
    """Decided cards say so; each worker who holds the case again is told why, with the Complete button."""
    why = html.escape(mask_text(event.reason or "—"))
    _edit_cards(session, ctx, event.case_id, event.card_ids, lambda _: _(
        "🔁 Case {number} sent back for rework by the dispatch office: {reason}").format(
        number=event.case_number, reason=why))
    now = ctx.clock.now()
    for worker_id in event.worker_ids:
        worker = _reachable(session, worker_id)
        if worker is None:
            continue
        task_id = session.exec(select(CaseTask.id).where(
            CaseTask.case_id == event.case_id, CaseTask.assignee_id == worker.id,
            CaseTask.status == TaskStatus.ACCEPTED).order_by(CaseTask.id)).first()
        _ = gettext_for(worker.locale)
        text = "\n".join([
            _("🔁 Rework: case {number} was reopened.").format(number=event.case_number),
            _("Reason: {reason}").format(reason=why),
            _("Fix it, then press Complete and send new photos and your location."),
        ])
        payload: dict = {"text": text, "parse_mode": "HTML"}
        if task_id is not None:
            payload["reply_markup"] = task_keyboard(_, task_id, can_return=False)
        enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", payload=payload, now=now,
                person_id=worker.id, case_id=event.case_id)


def closed_by_office(session: Session, ctx: ServiceContext, event: ClosedByOffice) -> None:
    at = local_time(ctx.clock.now(), ctx.timezone)
    _edit_cards(session, ctx, event.case_id, event.card_ids, lambda _: _(
        "✅ Case {number} approved and closed by the dispatch office ({at}).").format(number=event.case_number, at=at))
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "✅ Case {number} was verified and closed. Thank you!").format(number=event.case_number))


RENDERERS: EventTable = {
    CaseCancelled: [case_cancelled],
    CaseMerged: [case_merged],
    ReportWithdrawn: [report_withdrawn],
    ReworkOrdered: [rework_ordered],
    ClosedByOffice: [closed_by_office],
}


def supervisor_case_card(ctx: ServiceContext, *, supervisor_id: int, case_id: int, locale: str) -> tuple[str, dict]:
    """The card of a case of the supervisor's area (/case NUMBER) with Cancel and Merge; a read-only answer,
    so the handler sends it. Raises the supervision refusals (outside the area, not a supervisor)."""
    _ = gettext_for(locale)
    with ctx.sessions() as session:
        _sup, case = supervisor_and_case(session, supervisor_id, case_id)
        header = _("📁 Case {number} · {status}").format(number=case.number, status=status_label(case.status, _))
        return case_card(session, ctx, case, locale, header=header), {"inline_keyboard": [case_end_row(_, case.id)]}
