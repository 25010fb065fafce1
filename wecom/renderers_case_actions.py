"""WeCom renderers of cancel, merge, rework ordered without a card, and an office's approval, for staff
on WeCom (residents stay on Telegram); the same msgids as bot/renderers/case_actions.py."""

from __future__ import annotations

from sqlmodel import Session, select

from models.events.case_actions import CaseCancelled, CaseMerged, ClosedByOffice, ReworkOrdered
from models.work import CaseTask, TaskStatus
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.privacy import mask_text
from wecom import texts
from wecom.actions import task_buttons
from wecom.formats import button_card
from wecom.outbox import queue
from wecom.renderers_supervision import _tell_supervisors, _tell_workers
from wecom.renderers_work import _person, tell


def case_cancelled(session: Session, ctx: ServiceContext, event: CaseCancelled) -> None:
    actor = _person(session, event.actor_person_id)
    if actor is not None:
        _ = gettext_for(actor.locale)
        tell(session, ctx, actor, _("🚫 Case {number} is cancelled. Reason: {reason}").format(
            number=event.case_number, reason=event.reason), case_id=event.case_id)


def case_merged(session: Session, ctx: ServiceContext, event: CaseMerged) -> None:
    actor = _person(session, event.actor_person_id)
    if actor is not None:
        _ = gettext_for(actor.locale)
        tell(session, ctx, actor, _("🔗 Case {number} is merged into {into}; its {count} follower(s) now follow "
                                    "{into}.").format(number=event.case_number, into=event.into_number,
                                                      count=len(event.moved_person_ids)), case_id=event.case_id)


def rework_ordered(session: Session, ctx: ServiceContext, event: ReworkOrdered) -> None:
    why = mask_text(event.reason or "—")
    _tell_supervisors(session, ctx, event, lambda _: _(
        "🔁 Case {number} sent back for rework by the dispatch office: {reason}").format(
        number=event.case_number, reason=why))
    for worker_id in event.worker_ids:
        worker = _person(session, worker_id)
        if worker is None:
            continue
        _ = gettext_for(worker.locale)
        task_id = session.exec(select(CaseTask.id).where(
            CaseTask.case_id == event.case_id, CaseTask.assignee_id == worker.id,
            CaseTask.status == TaskStatus.ACCEPTED).order_by(CaseTask.id)).first()
        title = _("🔁 Rework: case {number} was reopened.").format(number=event.case_number)
        body = "\n".join([_("Reason: {reason}").format(reason=why),
                          _("Fix it, then press Complete and send new photos and your location.")])
        if task_id is None:
            tell(session, ctx, worker, title + "\n" + body, case_id=event.case_id)
        else:
            queue(session, worker, button_card(title=title, sub_title=body,
                                               buttons=task_buttons(_, task_id, can_return=False)),
                  now=ctx.clock.now(), case_id=event.case_id)


def closed_by_office(session: Session, ctx: ServiceContext, event: ClosedByOffice) -> None:
    at = texts.local_time(ctx.clock.now(), ctx.timezone)
    _tell_supervisors(session, ctx, event, lambda _: _(
        "✅ Case {number} approved and closed by the dispatch office ({at}).").format(number=event.case_number, at=at))
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "✅ Case {number} was verified and closed. Thank you!").format(number=event.case_number))


RENDERERS: EventTable = {
    CaseCancelled: [case_cancelled],
    CaseMerged: [case_merged],
    ReworkOrdered: [rework_ordered],
    ClosedByOffice: [closed_by_office],
}
