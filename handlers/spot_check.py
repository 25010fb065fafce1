"""Spot checks (不定时抽查): the on-duty worker answers with a fresh photo and a live location.

This router sits before the worker router and claims a worker's photo, document and location
messages only while that worker has an open spot check AND no conversation of their own (no FSM
state): a worker in the middle of a proof (CompletionFlow) or a return reason keeps that flow.
Live updates are claimed only for the live location the worker sent for the check.

The service tells the worker when a check ends (passed, or late); the handlers here answer
everything else: what was refused and why, and what is still missing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter, StateFilter
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from models.lifecycle import Role
from models.tables import Person
from services import spot_checks
from services.context import ServiceContext
from services.dispatch import local_time
from services.notify import send_reply
from services.photos import MAX_BYTES
from services.spot_checks import AnswerOutcome, AnswerProblem, AnswerResult


class HasOpenSpotCheck(Filter):
    """Passes for a worker with an open (PENDING) spot check."""

    async def __call__(self, message: Message, ctx: ServiceContext, person: Person | None = None) -> bool:
        if person is None or not person.has_role(Role.WORKER):
            return False
        return await asyncio.to_thread(spot_checks.open_check_id, ctx, worker_id=person.id) is not None


class IsSpotCheckLiveLocation(Filter):
    """Passes for a live update of the location a worker sent for their open spot check."""

    async def __call__(self, message: Message, ctx: ServiceContext, person: Person | None = None) -> bool:
        if person is None or not person.has_role(Role.WORKER):
            return False
        found = await asyncio.to_thread(spot_checks.live_check_id, ctx, worker_id=person.id,
                                        message_id=message.message_id)
        return found is not None


def build_router() -> Router:
    router = Router(name="spot_check")
    router.message.register(answer_photo, StateFilter(None), F.photo | F.document, HasOpenSpotCheck())
    router.message.register(answer_location, StateFilter(None), F.location, HasOpenSpotCheck())
    router.edited_message.register(live_location_moved, F.location, IsSpotCheckLiveLocation())
    return router


def _aware(at: datetime | int) -> datetime:
    if isinstance(at, int):
        return datetime.fromtimestamp(at, UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _reply(ctx: ServiceContext, message: Message, person: Person, text: str) -> None:
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=text, person_id=person.id)


# -- rendering ---------------------------------------------------------------------------------------------


def _photo_refusal(problem: AnswerProblem) -> str:
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


def _location_refusal(result: AnswerResult, ctx: ServiceContext) -> str:
    problems = result.problems
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
                       "Send your location again now.").format(minutes=max(1, round(result.age_s / 60))))
    if AnswerProblem.LOW_ACCURACY in problems:
        lines.append(_("📍 Your location is only accurate to ±{accuracy} m; at most ±{max} m is accepted. "
                       "Wait for a better GPS fix outdoors and send it again.").format(
            accuracy=round(result.accuracy_m), max=round(ctx.settings.proof_location_max_accuracy_m)))
    if AnswerProblem.NOT_LIVE in problems:
        lines.append(_("This is a one-off location. Share your live location instead: tap 📎 → Location → "
                       "Share My Live Location."))
    if AnswerProblem.OUTSIDE_GRID in problems:
        lines.append(_("📍 This location is outside grid {grid}. Go into the grid and share your live location "
                       "again.").format(grid=result.grid_label))
    return "\n".join(lines)


def _answer_text(result: AnswerResult, ctx: ServiceContext, *, photo: bool) -> str | None:
    """What to tell the worker after an answer (None: the service already told them)."""
    due = local_time(result.due_at, ctx.timezone)
    if result.outcome is AnswerOutcome.NO_CHECK:
        return _("There is no open spot check for you any more.")
    if result.outcome in (AnswerOutcome.PASSED, AnswerOutcome.LATE):
        return None
    if result.outcome is AnswerOutcome.REFUSED:
        text = _photo_refusal(result.problems[0]) if photo else _location_refusal(result, ctx)
        return text + "\n" + _("Spot check of grid {grid}: answer by {due}.").format(grid=result.grid_label, due=due)
    if result.outcome is AnswerOutcome.WAITING_FOR_LOCATION:
        return _("📷 Photo received. Now share your live location from inside the grid (📎 → Location → Share My "
                 "Live Location) by {due}.").format(due=due)
    return _("📍 Live location received, inside the grid. Now send a photo taken now by {due}.").format(due=due)


# -- handlers ----------------------------------------------------------------------------------------------


async def answer_photo(message: Message, bot: Bot, ctx: ServiceContext, person: Person) -> None:
    forwarded = message.forward_origin is not None
    data = None
    if message.photo and not forwarded:
        size = message.photo[-1]
        if size.file_size is None or size.file_size <= MAX_BYTES:
            try:
                data = (await bot.download(size.file_id)).read()
            except TelegramBadRequest:  # Telegram refuses downloads over 20 MB
                data = b""
    result = await asyncio.to_thread(
        spot_checks.record_photo, ctx, worker_id=person.id, data=data, message_date=_aware(message.date),
        forwarded=forwarded, as_file=message.document is not None)
    text = _answer_text(result, ctx, photo=True)
    if text:
        await _reply(ctx, message, person, text)


def _location_args(message: Message) -> dict:
    location = message.location
    return dict(lat=location.latitude, lon=location.longitude, live_period=location.live_period,
                forwarded=message.forward_origin is not None, accuracy_m=location.horizontal_accuracy,
                message_date=_aware(message.edit_date or message.date), venue=message.venue is not None,
                via_bot=message.via_bot is not None, message_id=message.message_id)


async def answer_location(message: Message, ctx: ServiceContext, person: Person) -> None:
    result = await asyncio.to_thread(spot_checks.record_location, ctx, worker_id=person.id,
                                     **_location_args(message))
    text = _answer_text(result, ctx, photo=False)
    if text:
        await _reply(ctx, message, person, text)


async def live_location_moved(message: Message, ctx: ServiceContext, person: Person) -> None:
    result = await asyncio.to_thread(spot_checks.record_location, ctx, worker_id=person.id,
                                     **_location_args(message))
    # Live updates come every few seconds: speak only when this one made the location count.
    if result.outcome is AnswerOutcome.WAITING_FOR_PHOTO and result.newly_accepted:
        await _reply(ctx, message, person, _answer_text(result, ctx, photo=False))
