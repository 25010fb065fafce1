"""Telegram renderers of spot checks: the request to the worker, the answers to each photo and location,
the verdict, and the ping to the grid's supervisors (and their group's forum topic) when a check did not pass."""

from __future__ import annotations

from bot.renderers.work_text import local_time
from services.names import localized
import html
import logging
from collections.abc import Callable

from sqlmodel import Session, select

from models.events.staff import (
    AnswerKind,
    AnswerOutcome,
    AnswerProblem,
    SpotCheckAnswerJudged,
    SpotCheckFailed,
    SpotCheckPassed,
    SpotCheckRequested,
)
from models.supervision import SpotCheckStatus
from models.tables import Area, Person
from onegrid.i18n import N_, gettext_for
from services import dispatch
from services.areas import supervisor_group
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue

log = logging.getLogger("onegrid.spot_checks")

Gettext = Callable[[str], str]

REASONS = {
    "no_answer": N_("nothing was sent"),
    "nobody_on_duty": N_("nobody was on duty"),
    "no_photo": N_("no photo"),
    "no_location": N_("no location"),
    "photo:forwarded": N_("the photo was forwarded"),
    "photo:as_file": N_("the picture came as a file, not as a photo"),
    "photo:stale": N_("the photo was not sent at once"),
    "photo:same_picture": N_("the photo repeated an earlier one"),
    "location:forwarded": N_("the location was forwarded"),
    "location:venue": N_("a place picked on the map was sent instead of the worker's own position"),
    "location:via_bot": N_("the location came through another bot"),
    "location:stale": N_("the location was old"),
    "location:low_accuracy": N_("the location was too vague"),
    "location:not_live": N_("the location was not live"),
    "location:outside_grid": N_("the location was outside the grid"),
}
UNREADABLE_PHOTO = N_("the photo could not be read")  # too large, not an image, cut off, a bomb


def render_reasons(codes: tuple[str, ...] | list[str], _: Gettext) -> str:
    """The reasons in the reader's words, joined with commas; unreadable photos share one phrase."""
    return ", ".join(_(REASONS.get(code, UNREADABLE_PHOTO if code.startswith("photo:") else code))
                     for code in codes)


def grid_label(session: Session, grid_code: str, locale: str) -> str:
    """The grid's name in `locale` with its code (HTML-escaped)."""
    area = session.exec(select(Area).where(Area.code == grid_code)).first()
    name = localized(area, locale, grid_code)
    return html.escape(name if name == grid_code else f"{name} ({grid_code})")


def _tell_worker(session: Session, ctx: ServiceContext, worker_id: int | None, text: Callable[[Gettext, str], str]
                 ) -> None:
    """Queue `text(gettext, grid label)` to the worker, in their language."""
    worker = session.get(Person, worker_id) if worker_id else None
    if worker is None or worker.telegram_user_id is None:
        return
    enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=ctx.clock.now(), person_id=worker.id,
            payload={"text": text(gettext_for(worker.locale), worker.locale), "parse_mode": "HTML"})


def spot_check_requested(session: Session, ctx: ServiceContext, event: SpotCheckRequested) -> None:
    due = local_time(event.due_at, ctx.timezone)
    _tell_worker(session, ctx, event.worker_id, lambda _, locale: _(
        "🔍 Spot check of grid {grid}\n"
        "By {due} (within {minutes} min), send from inside the grid:\n"
        "1. a photo taken now with the camera (not forwarded, not as a file);\n"
        "2. your live location: tap 📎 → Location → Share My Live Location.\n"
        "In the middle of completing an order? Finish it, or send /cancel first: until then your photo "
        "and location count for the order.").format(grid=grid_label(session, event.grid_code, locale), due=due,
                                                    minutes=event.answer_minutes))


def spot_check_passed(session: Session, ctx: ServiceContext, event: SpotCheckPassed) -> None:
    _tell_worker(session, ctx, event.worker_id, lambda _, locale: _(
        "✅ Spot check of grid {grid} passed. Thank you!").format(grid=grid_label(session, event.grid_code, locale)))


# -- the reply to each answer -------------------------------------------------------------------------------


def photo_refusal(problem: AnswerProblem, _: Gettext) -> str:
    texts = {
        AnswerProblem.FORWARDED: lambda: _("This photo was forwarded. Take a new photo now with the camera and "
                                           "send it."),
        AnswerProblem.AS_FILE: lambda: _("Please send the picture as a photo taken now with the camera, not as a "
                                         "file."),
        AnswerProblem.STALE: lambda: _("This photo was not sent just now. Take a new photo and send it at once."),
        AnswerProblem.SAME_PICTURE: lambda: _("This picture was sent before. Take a new photo of the grid now."),
        AnswerProblem.TOO_LARGE: lambda: _("This file is larger than 20 MB. Send the picture as a photo, or a "
                                           "smaller file."),
        AnswerProblem.TOO_MANY_PIXELS: lambda: _("This picture has far too many pixels for a camera photo and was "
                                                 "refused. Send the photo from your camera."),
        AnswerProblem.TRUNCATED: lambda: _("This picture is incomplete (the file is cut off). Send it again."),
    }
    return texts.get(problem, lambda: _("This is not a picture we can read. Send a photo (JPEG, PNG, WebP or "
                                        "HEIC)."))()


def location_refusal(event: SpotCheckAnswerJudged, ctx: ServiceContext, _: Gettext, grid: str) -> str:
    problems = event.problems
    # A location that is not the worker's own position says nothing else worth reading about.
    if AnswerProblem.FORWARDED in problems:
        return _("This location was forwarded. Send your own location from the site, not a forwarded one.")
    if AnswerProblem.VENUE in problems:
        return _("This is a place picked on the map, not your position. Share your own location "
                 "(📎 → Location).")
    if AnswerProblem.VIA_BOT in problems:
        return _("This location came through another bot. Share your own location (📎 → Location).")
    lines = []
    if AnswerProblem.STALE in problems:
        lines.append(_("This location was sent {minutes} min ago, which is too old to prove you are on site. "
                       "Send your location again now.").format(minutes=max(1, round(event.age_s / 60))))
    if AnswerProblem.LOW_ACCURACY in problems:
        lines.append(_("📍 Your location is only accurate to ±{accuracy} m; at most ±{max} m is accepted. "
                       "Wait for a better GPS fix outdoors and send it again.").format(
            accuracy=round(event.accuracy_m), max=round(ctx.settings.proof_location_max_accuracy_m)))
    if AnswerProblem.NOT_LIVE in problems:
        lines.append(_("This is a one-off location. Share your live location instead: tap 📎 → Location → "
                       "Share My Live Location."))
    if AnswerProblem.OUTSIDE_GRID in problems:
        lines.append(_("📍 This location is outside grid {grid}. Go into the grid and share your live location "
                       "again.").format(grid=grid))
    return "\n".join(lines)


def answer_text(session: Session, ctx: ServiceContext, event: SpotCheckAnswerJudged, _: Gettext, locale: str) -> str:
    """What the worker is told after an answer that left the check open."""
    due = local_time(event.due_at, ctx.timezone)
    if event.outcome is AnswerOutcome.REFUSED:
        grid = grid_label(session, event.grid_code, locale)
        text = (photo_refusal(event.problems[0], _) if event.kind is AnswerKind.PHOTO
                else location_refusal(event, ctx, _, grid))
        return text + "\n" + _("Spot check of grid {grid}: answer by {due}.").format(grid=grid, due=due)
    if event.outcome is AnswerOutcome.WAITING_FOR_LOCATION:
        return _("📷 Photo received. Now share your live location from inside the grid (📎 → Location → Share My "
                 "Live Location) by {due}.").format(due=due)
    return _("📍 Live location received, inside the grid. Now send a photo taken now by {due}.").format(due=due)


def spot_check_answer_judged(session: Session, ctx: ServiceContext, event: SpotCheckAnswerJudged) -> None:
    # Live updates come every few seconds: speak only when this one made the location count.
    if event.kind is AnswerKind.LIVE_UPDATE and not (
            event.outcome is AnswerOutcome.WAITING_FOR_PHOTO and event.newly_accepted):
        return
    _tell_worker(session, ctx, event.worker_id, lambda _, locale: answer_text(session, ctx, event, _, locale))


# -- a check that did not pass ----------------------------------------------------------------------------------


def failure_text(session: Session, ctx: ServiceContext, event: SpotCheckFailed, locale: str) -> str:
    """The supervisors' ping about a check that did not pass, in `locale`."""
    _ = gettext_for(locale)
    grid = grid_label(session, event.grid_code, locale)
    if event.status == SpotCheckStatus.NOBODY:
        lines = [_("🔍 Spot check: nobody on duty in grid {grid}").format(grid=grid),
                 _("At {time}, during working hours, none of the grid's workers was on duty.").format(
                     time=local_time(event.requested_at, ctx.timezone))]
    else:
        worker = session.get(Person, event.worker_id) if event.worker_id else None
        head = (_("🔍 Spot check: no answer from grid {grid}") if event.status == SpotCheckStatus.SILENT
                else _("🔍 Spot check failed in grid {grid}"))
        lines = [head.format(grid=grid),
                 _("Worker: {name}").format(name=html.escape(worker.display_name if worker else "—")),
                 _("Asked at {asked} to answer by {due}.").format(
                     asked=local_time(event.requested_at, ctx.timezone),
                     due=local_time(event.due_at, ctx.timezone)),
                 _("What went wrong: {reasons}").format(reasons=html.escape(render_reasons(event.reasons, _)))]
    return "\n".join(lines)


def spot_check_failed(session: Session, ctx: ServiceContext, event: SpotCheckFailed) -> None:
    """Tell the worker the check is over, then ping the grid's supervisors (the nearest level with any)
    and their group chat (in the grid's forum topic when one is bound)."""
    now = ctx.clock.now()
    due = local_time(event.due_at, ctx.timezone)
    if event.status == SpotCheckStatus.SILENT:
        _tell_worker(session, ctx, event.worker_id, lambda _, locale: _(
            "⏰ The spot check of grid {grid} is over: nothing arrived by {due}. Your supervisor was told.").format(
            grid=grid_label(session, event.grid_code, locale), due=due))
    elif event.status == SpotCheckStatus.FAILED:
        _tell_worker(session, ctx, event.worker_id, lambda _, locale: _(
            "❌ The spot check of grid {grid} failed: {reasons}. Your supervisor was told.").format(
            grid=grid_label(session, event.grid_code, locale), reasons=html.escape(render_reasons(event.reasons, _))))
    supervisors = dispatch.supervisors_of(session, event.grid_code)
    for person in supervisors:
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                payload={"text": failure_text(session, ctx, event, person.locale), "parse_mode": "HTML"})
    group = supervisor_group(session, event.grid_code, grid_code=event.grid_code)
    if group is not None:
        payload = {"text": failure_text(session, ctx, event, ctx.settings.default_locale), "parse_mode": "HTML"}
        if group[1] is not None:
            payload["message_thread_id"] = group[1]
        enqueue(session, chat_id=group[0], method="sendMessage", now=now, payload=payload)
    if not supervisors and group is None:
        log.warning("spot check %s of grid %s: no supervisor to tell", event.check_id, event.grid_code)


RENDERERS: EventTable = {
    SpotCheckRequested: [spot_check_requested],
    SpotCheckAnswerJudged: [spot_check_answer_judged],
    SpotCheckPassed: [spot_check_passed],
    SpotCheckFailed: [spot_check_failed],
}
