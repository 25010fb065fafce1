"""Resident handlers: the menu, language, consent, /my with case cards, 回访, account deletion.

The report conversation itself is in handlers/resident_report*.py, /my in handlers/resident_cases.py,
回访 in handlers/resident_feedback.py. Order matters: the menu
(commands and reply-keyboard buttons) answers in any conversation state, then the report
flow, then the 回访 follow-ups, then a fallback that points back to the menu.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BotCommand, CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing, send
from bot.resident_ui import (
    CANCEL_BUTTON,
    HELP_BUTTON,
    LANGUAGE_BUTTON,
    AccountCb,
    ConsentCb,
    LangCb,
    account_keyboard,
    in_every_language,
    language_keyboard,
    main_keyboard,
)
from bot.throttle import register_flood_notice
from handlers import resident_cases, resident_feedback, resident_report
from handlers.common import help_
from models.events.resident import ReplyTo
from models.tables import Person
from onegrid.i18n import N_, SUPPORTED, gettext_for
from services import residents
from services.context import ServiceContext
from services.report_draft import DRAFT_STATE_PREFIX

log = logging.getLogger(__name__)

def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    root = Router(name="resident")
    root.message.filter(F.chat.type == ChatType.PRIVATE)
    root.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    register_flood_notice(root)
    root.startup.register(set_commands)

    menu = Router(name="resident-menu")
    menu.message.register(cancel, Command("cancel"))
    menu.message.register(cancel, F.text.in_(in_every_language(CANCEL_BUTTON)))
    menu.message.register(show_language, Command("lang"))
    menu.message.register(show_language, F.text.in_(in_every_language(LANGUAGE_BUTTON)))
    resident_cases.register(menu)
    menu.message.register(help_, F.text.in_(in_every_language(HELP_BUTTON)))
    menu.message.register(ask_delete, Command("delete"))
    menu.callback_query.register(choose_language, LangCb.filter())
    menu.callback_query.register(decline_consent, ConsentCb.filter(F.act == "no"))
    resident_feedback.register_buttons(menu)
    menu.callback_query.register(account, AccountCb.filter())
    root.include_router(menu)

    root.include_router(resident_report.build_router())

    follow_ups = Router(name="resident-feedback")
    resident_feedback.register_follow_ups(follow_ups)
    follow_ups.message.register(fallback)
    root.include_router(follow_ups)
    return root


async def _send(ctx: ServiceContext, chat_id: int, person: Person | None, *messages: Outgoing) -> None:
    await asyncio.to_thread(send, ctx, chat_id=chat_id, messages=messages,
                            person_id=person.id if person else None)


# -- startup --------------------------------------------------------------------------------------

_COMMANDS = (
    ("report", N_("report a problem")),
    ("my", N_("my cases")),
    ("lang", N_("language: 中文 / English")),
    ("help", N_("what I can do")),
    ("cancel", N_("stop the current step")),
    ("delete", N_("delete my data")),
)


async def set_commands(bot: Bot) -> None:
    """The command menu in both languages (Chinese for zh clients, English for everyone else)."""
    for locale in SUPPORTED:
        _ = gettext_for(locale)
        commands = [BotCommand(command=name, description=_(description)) for name, description in _COMMANDS]
        try:
            await bot.set_my_commands(commands, language_code="zh" if locale == "zh_CN" else None)
        except Exception:  # noqa: BLE001 - a missing menu must not stop the bot; the next start retries
            log.warning("could not set the bot's command menu for %s", locale, exc_info=True)


# -- cancel, language, consent --------------------------------------------------------------------

async def cancel(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    current = await state.get_state()
    await state.clear()
    if current and current.startswith(DRAFT_STATE_PREFIX):
        text = resident_report.cancelled_text()
    elif current:
        text = _("Stopped.")
    else:
        text = _("There is nothing to cancel.")
    await _send(ctx, message.chat.id, person, Outgoing(text, main_keyboard(_)))


async def show_language(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    await _send(ctx, message.chat.id, person, Outgoing(_("Choose your language:"), language_keyboard()))


async def choose_language(query: CallbackQuery, callback_data: LangCb, ctx: ServiceContext,
                          person: Person | None) -> None:
    locale = callback_data.locale if callback_data.locale in SUPPORTED else "en"
    await asyncio.to_thread(residents.set_language, ctx, telegram_user_id=query.from_user.id, locale=locale,
                            reply_to=ReplyTo(query.message.chat.id))
    await query.answer()


async def decline_consent(query: CallbackQuery, ctx: ServiceContext, person: Person | None) -> None:
    await query.answer()
    await _send(ctx, query.message.chat.id, person,
                Outgoing(None, edit_message_id=query.message.message_id),
                Outgoing(_("Understood: nothing about you is stored. You can read /help, and agree later "
                           "when you want to report a problem."), main_keyboard(_)))


# -- account --------------------------------------------------------------------------------------

async def ask_delete(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    if person is None:
        await _send(ctx, message.chat.id, person, Outgoing(_("We store nothing about you.")))
        return
    if residents.is_staff(person):
        await _send(ctx, message.chat.id, person, Outgoing(_(
            "Staff accounts are managed by your supervisor; please ask them.")))
        return
    await _send(ctx, message.chat.id, person, Outgoing(_(
        "Delete your data? Your name, Telegram account and comments are removed, and you stop receiving "
        "updates. The cases you reported stay in the city's record without your name."), account_keyboard(_)))


async def account(query: CallbackQuery, callback_data: AccountCb, state: FSMContext, ctx: ServiceContext,
                  person: Person | None) -> None:
    chat_id = query.message.chat.id
    done = Outgoing(None, edit_message_id=query.message.message_id)
    if callback_data.act != "delete":
        await query.answer()
        await _send(ctx, chat_id, person, done, Outgoing(_("Nothing was deleted."), main_keyboard(_)))
        return
    if person is None:
        await query.answer(_("We store nothing about you."), show_alert=True)
        return
    await state.clear()
    try:
        await asyncio.to_thread(residents.delete_account, ctx, person_id=person.id,
                                reply_to=ReplyTo(chat_id, query.message.message_id))
    except residents.StaffAccount:
        await query.answer(_("Staff accounts are managed by your supervisor; please ask them."), show_alert=True)
        return
    await query.answer()


# -- anything else ---------------------------------------------------------------------------------

async def fallback(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    await _send(ctx, message.chat.id, person, Outgoing(
        _("I did not understand that. Use the buttons below, or /help for what I can do."), main_keyboard(_)))
