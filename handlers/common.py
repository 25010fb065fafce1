"""Commands anyone may use: /start and /help.

/start greets in the person's language. A resident who has not agreed yet reads, in one short
paragraph, what OneGrid stores and why, and is asked for consent (with a language switch);
nothing is stored until they agree. /help lists what the person can do for their role.
"""

from __future__ import annotations

import asyncio
import html

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.renderers import staff_menus
from bot.renderers.resident_outbox import Outgoing, send
from bot.resident_ui import PRIVACY_NOTICE, consent_keyboard, current_locale, main_keyboard
from models.lifecycle import Role
from models.tables import Person
from services import residents
from services.context import ServiceContext


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
    text += "\n\n" + _help_text(person)
    chat_id = message.chat.id
    if residents.is_staff(person):
        await _reply(ctx, chat_id, person, Outgoing(text))
        return
    if person is None or person.consented_at is None:
        text += "\n\n" + _("Language: /lang switches between 中文 and English.")
        keyboard = consent_keyboard(_, locale=current_locale())
        await _reply(ctx, chat_id, person, Outgoing(text + "\n\n" + _(PRIVACY_NOTICE), keyboard))
        return
    if message.from_user is not None:
        await asyncio.to_thread(residents.follow_telegram_language, ctx, person_id=person.id,
                                telegram_language=message.from_user.language_code)
    await _reply(ctx, chat_id, person, Outgoing(text, main_keyboard(_)))


async def help_(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    keyboard = None if residents.is_staff(person) else main_keyboard(_)
    await _reply(ctx, message.chat.id, person, Outgoing(_help_text(person), keyboard))


async def _reply(ctx: ServiceContext, chat_id: int, person: Person | None, *messages: Outgoing) -> None:
    await asyncio.to_thread(send, ctx, chat_id=chat_id, messages=messages,
                            person_id=person.id if person else None)


def _help_text(person: Person | None) -> str:
    lines = [_("What you can do:")]
    # Staff see the same commands as in their chat's menu (bot/renderers/staff_menus.py), in the same words.
    staff: list[tuple[str, str]] = []
    if person is not None and person.has_role(Role.WORKER):
        staff += staff_menus.WORKER_COMMANDS
    if person is not None and person.has_role(Role.SUPERVISOR):
        staff += [c for c in staff_menus.SUPERVISOR_COMMANDS if c not in staff]
    lines += [f"/{name} — {_(description)}" for name, description in staff]
    if not residents.is_staff(person):
        lines += [
            _("/report — report a problem: a photo, the location, a few words"),
            _("/my — your cases and where they stand"),
            _("/lang — 中文 / English"),
            _("/delete — delete your data"),
        ]
    lines += [
        _("/cancel — stop what you are doing"),
        _("/start — greeting and what OneGrid does"),
        _("/help — this list"),
    ]
    return "\n".join(lines)
