"""Commands anyone may use: /start and /help."""

from __future__ import annotations

import asyncio
import html

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from models.tables import Person
from services.context import ServiceContext
from services.notify import send_reply

def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    router = Router(name="common")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router


async def start(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    name = html.escape(message.from_user.first_name if message.from_user else "")
    text = _("Hello, {name}! This is OneGrid, the city's grid service. "
             "Report a problem in the street and follow it until it is fixed.").format(name=name)
    text += "\n\n" + _help_text()
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=text,
                            person_id=person.id if person else None)


async def help_(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=_help_text(),
                            person_id=person.id if person else None)


def _help_text() -> str:
    return "\n".join([
        _("What you can do:"),
        _("/start — greeting and what OneGrid does"),
        _("/help — this list"),
    ])
