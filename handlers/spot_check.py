"""Spot checks (不定时抽查): the on-duty worker answers with a fresh photo and a live location.

This router sits before the worker router and claims a worker's photo, document and location
messages only while that worker has an open spot check AND no conversation of their own (no FSM
state): a worker in the middle of a proof (CompletionFlow) or a return reason keeps that flow.
Live updates are claimed only for the live location the worker sent for the check.

Every verdict on an answer (refused and why, what is still missing, passed, late) is published by the
service and worded by bot/renderers/staff_spot_checks.py in the same transaction; the handlers here
only answer when there was no open check to record anything on.
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
from services.notify import send_reply
from services.photos import MAX_BYTES
from services.spot_checks import AnswerOutcome


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


async def _no_check(ctx: ServiceContext, message: Message, person: Person) -> None:
    # Nothing was recorded (the check ended meanwhile): a refusal, so its own transaction is right.
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id,
                            text=_("There is no open spot check for you any more."), person_id=person.id)


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
    if result.outcome is AnswerOutcome.NO_CHECK:
        await _no_check(ctx, message, person)


def _location_args(message: Message) -> dict:
    location = message.location
    return dict(lat=location.latitude, lon=location.longitude, live_period=location.live_period,
                forwarded=message.forward_origin is not None, accuracy_m=location.horizontal_accuracy,
                message_date=_aware(message.edit_date or message.date), venue=message.venue is not None,
                via_bot=message.via_bot is not None, message_id=message.message_id)


async def answer_location(message: Message, ctx: ServiceContext, person: Person) -> None:
    result = await asyncio.to_thread(spot_checks.record_location, ctx, worker_id=person.id,
                                     **_location_args(message))
    if result.outcome is AnswerOutcome.NO_CHECK:
        await _no_check(ctx, message, person)


async def live_location_moved(message: Message, ctx: ServiceContext, person: Person) -> None:
    # Live updates come every few seconds: the renderer speaks only when this one made the location count.
    await asyncio.to_thread(spot_checks.record_location, ctx, worker_id=person.id, live_update=True,
                            **_location_args(message))
