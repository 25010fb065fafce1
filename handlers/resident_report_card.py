"""The report conversation's last steps: the description, the summary card, editing a field, Submit.

Handlers receive the live draft from `LiveDraft` / `ReportButton` (handlers/resident_report_kit.py).
"""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing
from bot.resident_ui import ReportCb, button, cancel_keyboard, evidence_keyboard, inline
from handlers.resident_report_kit import (
    ReportFlow,
    broken_report,
    card_keyboard,
    category_or_restart,
    evidence_prompt,
    fetch_photos,
    first_screen,
    limit_text,
    location_prompt,
    reply,
    save,
    to_confirm,
)
from models.events.resident import ReplyTo
from models.tables import Person
from services import reporting, residents
from services.cases import OutsideGrid
from services.context import ServiceContext
from services.photos import PhotoRejected
from services.report_draft import CategoryUnavailable, DescriptionTooLong, ReportDraft, clean_description


async def text_during_evidence(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                               draft: ReportDraft) -> None:
    """Words typed before the location: keep them as the description rather than refuse them."""
    text = await _description(message, ctx, person)
    if text is None:
        return
    if text:
        draft.description = text
        await save(state, ctx, draft)
    hint = (_("Now send a photo of the problem.") if not draft.photos and not draft.photo_skipped
            else location_prompt())
    await reply(ctx, message.chat.id, person, Outgoing(_("📝 Noted as the description.") + "\n" + hint))


async def _description(message: Message, ctx: ServiceContext, person: Person | None) -> str | None:
    """The message text cleaned as a description; None (after telling the resident why) when too long."""
    try:
        return clean_description(message.text, limit=ctx.settings.report_description_max)
    except DescriptionTooLong as exc:
        await reply(ctx, message.chat.id, person, Outgoing(
            _("Your text is {length} characters long; please keep it within {limit} characters.").format(
                length=exc.length, limit=exc.limit)))
        return None


async def description_received(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                               draft: ReportDraft) -> None:
    text = await _description(message, ctx, person)
    if text is None:
        return
    if not text:
        await reply(ctx, message.chat.id, person, Outgoing(_("Please describe the problem in a few words.")))
        return
    draft.description = text
    await to_confirm(message.chat.id, state, ctx, person, draft)


async def edit_menu(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                    person: Person | None, draft: ReportDraft) -> None:
    await query.answer()
    d = draft.draft_id
    if callback_data.act == "back":
        keyboard = card_keyboard(draft)
    else:
        keyboard = inline([
            [button(_("🗂 Category"), ReportCb(draft=d, act="edit_cat")),
             button(_("📷 Photos"), ReportCb(draft=d, act="edit_photo"))],
            [button(_("📍 Location"), ReportCb(draft=d, act="edit_loc")),
             button(_("✏️ Description"), ReportCb(draft=d, act="edit_desc"))],
            [button(_("⬅ Back"), ReportCb(draft=d, act="back"))],
        ])
    await reply(ctx, query.message.chat.id, person,
                Outgoing(None, keyboard, edit_message_id=query.message.message_id))


async def edit_field(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                     person: Person | None, draft: ReportDraft) -> None:
    await query.answer()
    chat_id = query.message.chat.id
    card_done = Outgoing(None, edit_message_id=query.message.message_id)  # the old card loses its buttons
    draft.editing = True
    what = callback_data.act
    if what == "edit_cat":
        await state.set_state(ReportFlow.category)
        await save(state, ctx, draft)
        text, keyboard = await first_screen(ctx, draft, person)
        await reply(ctx, chat_id, person, card_done, Outgoing(text, keyboard))
    elif what == "edit_photo":
        category = await category_or_restart(draft, state, ctx, chat_id, person)
        if category is None:
            return
        draft.photos = []
        await state.set_state(ReportFlow.evidence)
        await save(state, ctx, draft)
        await reply(ctx, chat_id, person, card_done, evidence_prompt(draft, category))
    elif what == "edit_loc":
        await state.set_state(ReportFlow.evidence)
        await save(state, ctx, draft)
        await reply(ctx, chat_id, person, card_done, Outgoing(location_prompt(), evidence_keyboard(
            _, ask_location=True, no_photo=False, photos_done=False)))
    else:
        await state.set_state(ReportFlow.description)
        await save(state, ctx, draft)
        await reply(ctx, chat_id, person, card_done, Outgoing(
            _("✏️ Send the new description (up to {limit} characters).").format(
                limit=ctx.settings.report_description_max), cancel_keyboard(_)))


async def submit(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                 person: Person | None, bot: Bot, draft: ReportDraft) -> None:
    if await state.get_state() != ReportFlow.confirm.state or draft.category is None or not draft.located:
        await query.answer(_("Please finish the report first."), show_alert=True)
        return
    chat_id = query.message.chat.id
    photos = await fetch_photos(query, bot, draft)
    if photos is None:
        return
    card_id = query.message.message_id
    try:
        done = await asyncio.to_thread(reporting.submit_report, ctx, person_id=person.id, draft=draft,
                                       photos=photos, reply_to=ReplyTo(chat_id, card_id))
    except residents.ReportLimitReached as exc:
        await query.answer()
        await reply(ctx, chat_id, person, Outgoing(limit_text(_, exc, ctx)))
        return
    except OutsideGrid:
        await query.answer()
        draft.lat = draft.lon = draft.grid_code = None
        draft.editing = True
        await state.set_state(ReportFlow.evidence)
        await save(state, ctx, draft)
        await reply(ctx, chat_id, person, Outgoing(None, edit_message_id=card_id), Outgoing(
            _("The map has changed and this place is no longer inside a grid. Please share the location again."),
            evidence_keyboard(_, ask_location=True, no_photo=False, photos_done=False)))
        return
    except CategoryUnavailable:
        await query.answer()
        draft.editing = True
        await category_or_restart(draft, state, ctx, chat_id, person)
        return
    except (residents.ConsentRequired, PhotoRejected):
        await broken_report(query, state)
        return
    await state.clear()
    if done.created:
        await query.answer(_("Sent."))
    else:
        await query.answer(_("Already sent: case {number}.").format(number=done.number), show_alert=True)
