"""WeCom renderers of the work events: the work order card, a worker's answers and the proof flow.

Each renderer writes only for people whose channel is WeCom (`uses_wecom`); the Telegram renderers skip
them (services/notify.py). Wording: the Telegram msgids, plain text; buttons: wecom/actions.py.
"""

from __future__ import annotations

from sqlmodel import Session

from models.events.work import (
    CompletionStarted,
    DutyChanged,
    OfferMade,
    OfferRetracted,
    OrderAccepted,
    OrderReturned,
    OrderWithdrawn,
    PatrolOrderAssigned,
    ProofLocationHeld,
    ProofPhotoAdded,
    ProofPhotosCleared,
    ProofSubmitted,
    RetractReason,
)
from models.tables import Case, Person
from models.work import CaseTask
from onegrid.i18n import N_, gettext_for
from services import batch_reads, welfare_calls
from services.bus import EventTable
from services.context import ServiceContext
from services.names import department_name
from wecom import texts
from wecom.actions import flag_buttons, offer_buttons, outcome_buttons, photos_buttons, task_buttons
from wecom.formats import button_card, image_message, text_message
from wecom.outbox import queue, uses_wecom

RETRACT_NOTICES: dict[RetractReason, str] = {  # the msgids of bot/renderers/work.py
    RetractReason.CASE_ENDED: N_("Work order {number} is no longer open; no action needed."),
    RetractReason.TAKEN: N_("Work order {number} was taken by another worker. No action needed."),
    RetractReason.OFF_DUTY: N_("You went off duty: work order {number} was offered to others."),
    RetractReason.DEACTIVATED: N_("Work order {number} was withdrawn."),
    RetractReason.REASSIGNED: N_("Work order {number} was reassigned by the supervisor."),
    RetractReason.TAKEN_OVER: N_("Work order {number} was taken over by the supervisor."),
    RetractReason.SHELVED: N_("Work order {number} was put on hold by the supervisor."),
}


def _person(session: Session, person_id: int | None) -> Person | None:
    person = session.get(Person, person_id) if person_id is not None else None
    return person if uses_wecom(person) else None


def report_photo_path(session: Session, ctx: ServiceContext, case: Case) -> str | None:
    """The reporter's first photo whose cleaned copy is on disk (only that copy is ever sent on)."""
    return next((p.path for p in batch_reads.report_photos(session, case.id) if (ctx.settings.data_dir / p.path).is_file()), None)


def tell(session: Session, ctx: ServiceContext, person: Person, text: str, *, case_id: int | None = None) -> None:
    queue(session, person, text_message(text), now=ctx.clock.now(), case_id=case_id)


def order_card(session: Session, ctx: ServiceContext, person: Person, case: Case, task: CaseTask, *, header: str,
               footer: str = "", buttons: list) -> None:  # noqa: ANN001
    _ = gettext_for(person.locale)
    lines = texts.order_lines(session, case, task, person.locale, _, ctx.timezone)
    if footer:
        lines.append(footer)
    queue(session, person, button_card(title=header, sub_title="\n".join(lines), buttons=buttons,
                                       lines=texts.order_links(session, case, _)),
          now=ctx.clock.now(), case_id=case.id)


def offer_made(session: Session, ctx: ServiceContext, event: OfferMade) -> None:
    """The work order card with Accept / Return, then the resident's photo."""
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    _ = gettext_for(worker.locale)
    order_card(session, ctx, worker, case, task, header=_("🆕 Work order {number}").format(number=case.number),
               buttons=offer_buttons(_, event.offer_id))
    path = report_photo_path(session, ctx, case)
    if path is not None:
        queue(session, worker, image_message(path), now=ctx.clock.now(), case_id=case.id)


def patrol_order_assigned(session: Session, ctx: ServiceContext, event: PatrolOrderAssigned) -> None:
    reporter = _person(session, event.worker_id)
    if reporter is None:
        return
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    _ = gettext_for(reporter.locale)
    order_card(session, ctx, reporter, case, task,
               header=_("📋 Your patrol report is case {number}, assigned to you.").format(number=case.number),
               footer=_("Press Complete when the problem is solved."), buttons=task_buttons(_, task.id))


def offer_retracted(session: Session, ctx: ServiceContext, event: OfferRetracted | OrderWithdrawn) -> None:
    """A WeCom card cannot be taken back: the worker is told the order is gone (its buttons then refuse)."""
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    text = gettext_for(worker.locale)(RETRACT_NOTICES[event.reason]).format(number=event.case_number)
    tell(session, ctx, worker, text, case_id=event.case_id)


def order_accepted(session: Session, ctx: ServiceContext, event: OrderAccepted) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    case, task = session.get(Case, event.case_id), session.get(CaseTask, event.task_id)
    _ = gettext_for(worker.locale)
    if welfare_calls.check_of(session, case.id) is not None:  # a welfare check ends with an outcome, not a photo
        footer, buttons = _("On site, press what you found, then share your location there."), outcome_buttons(_, task.id)
    else:
        footer = _("When the problem is solved, press Complete and send photos and your location.")
        buttons = task_buttons(_, task.id)
    order_card(session, ctx, worker, case, task,
               header=_("✅ You accepted work order {number}").format(number=case.number), footer=footer,
               buttons=buttons)


def order_returned(session: Session, ctx: ServiceContext, event: OrderReturned) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    _ = gettext_for(worker.locale)
    number = session.get(Case, event.case_id).number
    tell(session, ctx, worker, _("Returned: work order {number} goes back to the dispatcher. Thank you for "
                                 "saying why.").format(number=number), case_id=event.case_id)


def duty_changed(session: Session, ctx: ServiceContext, event: DutyChanged) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    _ = gettext_for(worker.locale)
    if event.on_duty:
        text = _("🟢 You are on duty. New work orders of your area will come here.")
    else:
        text = _("⚪ You are off duty and will get no new work orders. Orders you hold stay yours.")
        if event.withdrawn:
            text += "\n" + _("Offers passed on to others: {count}.").format(count=event.withdrawn)
    tell(session, ctx, worker, text)


# -- proof ------------------------------------------------------------------------------------------------


def completion_started(session: Session, ctx: ServiceContext, event: CompletionStarted) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    number = session.get(Case, event.case_id).number
    _ = gettext_for(worker.locale)
    if event.photos >= event.max_photos:
        text = _("Case {number}: your {count} photos are kept.").format(number=number, count=event.photos)
        tell(session, ctx, worker, text + "\n" + texts.location_prompt(_), case_id=event.case_id)
        return
    text = _("Case {number}: send 1 to {max} photos of the finished work.").format(number=number, max=event.max_photos)
    if event.photos:
        text += "\n" + _("Photos kept from before: {count}.").format(count=event.photos)
    queue(session, worker, button_card(title=text, buttons=photos_buttons(_, event.completion_id,
                                                                          have_photos=event.photos > 0)),
          now=ctx.clock.now(), case_id=event.case_id)


def proof_photo_added(session: Session, ctx: ServiceContext, event: ProofPhotoAdded) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    _ = gettext_for(worker.locale)
    received = _("Photo {count} of {max} received.").format(count=event.photos, max=event.max_photos)
    if event.photos >= event.max_photos:
        tell(session, ctx, worker, received + "\n" + texts.location_prompt(_), case_id=event.case_id)
        return
    queue(session, worker, button_card(title=received, desc=_("Send another, or press Done with photos."),
                                       buttons=photos_buttons(_, event.completion_id, have_photos=True)),
          now=ctx.clock.now(), case_id=event.case_id)


def proof_photos_cleared(session: Session, ctx: ServiceContext, event: ProofPhotosCleared) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    _ = gettext_for(worker.locale)
    queue(session, worker, button_card(title=_("Photos removed. Send 1 to {max} new photos.").format(
        max=event.max_photos), buttons=photos_buttons(_, event.completion_id, have_photos=False)),
        now=ctx.clock.now(), case_id=event.case_id)


def proof_location_held(session: Session, ctx: ServiceContext, event: ProofLocationHeld) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    _ = gettext_for(worker.locale)
    text = texts.too_far_text(_, problems=event.problems, distance_m=event.distance_m, allowed_m=event.allowed_m,
                              accuracy_m=event.accuracy_m, max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)
    queue(session, worker, button_card(title=_("Case {number}").format(number=session.get(Case, event.case_id).number),
                                       sub_title=text, buttons=flag_buttons(_, event.completion_id)),
          now=ctx.clock.now(), case_id=event.case_id)


def proof_submitted(session: Session, ctx: ServiceContext, event: ProofSubmitted) -> None:
    worker = _person(session, event.worker_id)
    if worker is None:
        return
    _ = gettext_for(worker.locale)
    text = texts.submitted_text(_, number=session.get(Case, event.case_id).number, distance_m=event.distance_m,
                                live=event.live, flagged=event.flagged,
                                waiting_for=[department_name(session, c, worker.locale) for c in event.waiting_for])
    tell(session, ctx, worker, text, case_id=event.case_id)


RENDERERS: EventTable = {
    OfferMade: [offer_made],
    PatrolOrderAssigned: [patrol_order_assigned],
    OfferRetracted: [offer_retracted],
    OrderWithdrawn: [offer_retracted],
    OrderAccepted: [order_accepted],
    OrderReturned: [order_returned],
    DutyChanged: [duty_changed],
    CompletionStarted: [completion_started],
    ProofPhotoAdded: [proof_photo_added],
    ProofPhotosCleared: [proof_photos_cleared],
    ProofLocationHeld: [proof_location_held],
    ProofSubmitted: [proof_submitted],
}
