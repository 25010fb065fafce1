"""Telegram renderers of the completion flow: the answers a worker gets while sending proof.

The prompts the handlers also use (a step hint, a refusal that repeats the prompt) are public here,
taking the reader's `gettext`.
"""

from __future__ import annotations

import html

from sqlmodel import Session

from bot.renderers.work_text import department_name, tell
from bot.worker_ui import (
    Gettext,
    flag_keyboard,
    photos_keyboard,
    proof_keyboard,
    remove_reply_keyboard,
)
from models.events.work import (
    CompletionStarted,
    ProofLocationHeld,
    ProofPhotoAdded,
    ProofPhotosCleared,
    ProofSubmitted,
)
from models.tables import Case, Person
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext

LOW_ACCURACY, TOO_FAR, CLEARLY_FAR = "low_accuracy", "too_far", "clearly_far"  # LocationProblem values


def location_prompt(_: Gettext) -> str:
    return _("Now share your location on site: tap 📎 → Location → Share My Live Location (preferred), "
             "or press the button below to send your current location.")


def more_photos_or_location(_: Gettext) -> str:
    """After a photo: the worker may send more, and the location (which submits) whenever they are done."""
    return _("Send another photo, or share your location on site to submit: tap 📎 → Location → Share My Live "
             "Location (preferred), or press the button below.")


def submitted_text(_: Gettext, *, number: str, distance_m: float, live: bool, flagged: bool,
                   waiting_for: list[str]) -> str:
    """The receipt of a submitted proof; `waiting_for` are the names of departments still working."""
    kind = _("live location") if live else _("static location")
    text = _("✅ Proof submitted for case {number}: {distance} m from the case point ({kind}).").format(
        number=number, distance=round(distance_m), kind=kind)
    if flagged:
        text += "\n" + _("It is flagged: the supervisor will judge the location.")
    if waiting_for:
        text += "\n" + _("Your part is done. The case moves on when these departments finish theirs: "
                         "{departments}.").format(departments=html.escape(", ".join(waiting_for)))
    else:
        text += "\n" + _("A supervisor will verify it.")
    if not live:
        text += "\n" + _("Next time, please share a live location: it shows how long you were on site.")
    return text


def too_far_text(_: Gettext, *, problems: tuple[str, ...], distance_m: float, allowed_m: float, accuracy_m: float,
                 max_accuracy_m: float) -> str:
    lines = []
    if LOW_ACCURACY in problems:
        lines.append(_("📍 Your location is only accurate to ±{accuracy} m; at most ±{max} m is accepted. "
                       "Wait for a better GPS fix outdoors and send it again.").format(
            accuracy=round(accuracy_m), max=round(max_accuracy_m)))
    if TOO_FAR in problems:
        lines.append(_("📍 You are {distance} m from the case point; at most {allowed} m is accepted here. "
                       "Go to the place and send your location again.").format(
            distance=round(distance_m), allowed=round(allowed_m)))
    if CLEARLY_FAR in problems:  # only a live location gets here: it counts once it arrives
        lines.append(_("Keep sharing your live location: it is accepted as soon as you are there."))
    else:
        lines.append(_("Or, if you are sure you are in the right place, submit it flagged for the supervisor "
                       "to judge."))
    return "\n".join(lines)


def completion_started(session: Session, ctx: ServiceContext, event: CompletionStarted) -> None:
    """Ask for photos, or, with all photos already kept, for the location."""
    worker = session.get(Person, event.worker_id)
    number = session.get(Case, event.case_id).number
    _ = gettext_for(worker.locale)
    if event.photos >= event.max_photos:
        text = _("Case {number}: your {count} photos are kept.").format(number=number, count=event.photos)
        tell(session, ctx, worker, text + "\n" + location_prompt(_), proof_keyboard(_))
        return
    text = _("Case {number}: send 1 to {max} photos of the finished work.").format(number=number, max=event.max_photos)
    if event.photos:  # the location can come at once, as after a photo's receipt
        text += "\n" + _("Photos kept from before: {count}.").format(count=event.photos)
        tell(session, ctx, worker, text + "\n" + more_photos_or_location(_), proof_keyboard(_))
        return
    tell(session, ctx, worker, text, photos_keyboard(_, event.completion_id))


def proof_photo_added(session: Session, ctx: ServiceContext, event: ProofPhotoAdded) -> None:
    """The receipt brings the location button: the location submits, with as many photos as were sent."""
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    received = _("Photo {count} of {max} received.").format(count=event.photos, max=event.max_photos)
    if event.photos >= event.max_photos:
        tell(session, ctx, worker, received + "\n" + location_prompt(_), proof_keyboard(_))
        return
    tell(session, ctx, worker, received + "\n" + more_photos_or_location(_), proof_keyboard(_))


def proof_photos_cleared(session: Session, ctx: ServiceContext, event: ProofPhotosCleared) -> None:
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    tell(session, ctx, worker, _("Photos removed. Send 1 to {max} new photos.").format(max=event.max_photos),
         photos_keyboard(_, event.completion_id))


def proof_location_held(session: Session, ctx: ServiceContext, event: ProofLocationHeld) -> None:
    """Say what is wrong with the location, and offer to submit it flagged."""
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    text = too_far_text(_, problems=event.problems, distance_m=event.distance_m, allowed_m=event.allowed_m,
                        accuracy_m=event.accuracy_m, max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)
    tell(session, ctx, worker, text, flag_keyboard(_, event.completion_id, may_flag=CLEARLY_FAR not in event.problems))


def proof_submitted(session: Session, ctx: ServiceContext, event: ProofSubmitted) -> None:
    worker = session.get(Person, event.worker_id)
    _ = gettext_for(worker.locale)
    text = submitted_text(_, number=session.get(Case, event.case_id).number, distance_m=event.distance_m,
                          live=event.live, flagged=event.flagged,
                          waiting_for=[department_name(session, code, worker.locale) for code in event.waiting_for])
    tell(session, ctx, worker, text, remove_reply_keyboard())


RENDERERS: EventTable = {
    CompletionStarted: [completion_started],
    ProofPhotoAdded: [proof_photo_added],
    ProofPhotosCleared: [proof_photos_cleared],
    ProofLocationHeld: [proof_location_held],
    ProofSubmitted: [proof_submitted],
}
