"""What the supervision handlers share: the wording of refusals, and replies to read-only requests."""

from __future__ import annotations

import asyncio

from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from models.tables import Person
from onegrid.refusals import REFUSALS, supervision_refusal
from services.context import ServiceContext
from services.notify import send_reply


def refusal(exc: Exception) -> str:
    return supervision_refusal(_, exc)


async def say(ctx: ServiceContext, chat_id: int, person: Person, text: str, markup: dict | None = None) -> None:
    """A reply to a question, a read-only request or a refusal: nothing changed, so its own transaction."""
    await asyncio.to_thread(send_reply, ctx, chat_id=chat_id, text=text, reply_markup=markup, person_id=person.id)


async def call(query: CallbackQuery, fn, /, **kw):  # noqa: ANN001, ANN202
    """Run one service; on a refusal answer the button with the reason and return None."""
    try:
        return await asyncio.to_thread(fn, **kw)
    except REFUSALS as exc:
        await query.answer(refusal(exc), show_alert=True)
        return None
