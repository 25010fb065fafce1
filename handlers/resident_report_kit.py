"""What the report conversation's handlers share: its states, the filters that inject the live draft,
the prompts and the summary card. The handlers are in handlers/resident_report*.py."""

from __future__ import annotations

import asyncio
import html
import io
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.filters import Filter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing, send
from bot.renderers.resident_replies import DRAFT_EXPIRED
from bot.renderers.resident_views import kind_label
from bot.resident_ui import (
    PHOTOS_DONE_BUTTON,
    REPORT_BUTTON,
    ReportCb,
    button,
    cancel_keyboard,
    current_locale,
    evidence_keyboard,
    inline,
    kinds_keyboard,
    main_keyboard,
    patrol_card_keyboard,
)
from models.tables import Person
from services import report_choices, report_shortcuts, residents
from services.context import ServiceContext
from services.report_choices import CategoryChoice
from services.report_draft import MAX_PHOTOS, CategoryUnavailable, ReportDraft
from services.report_shortcuts import Shortcuts
from services.resident_views import local_time

log = logging.getLogger(__name__)


class ReportFlow(StatesGroup):
    category = State()
    evidence = State()  # photos, then the location
    duplicate = State()
    description = State()
    confirm = State()


async def reply(ctx: ServiceContext, chat_id: int, person: Person | None, *messages: Outgoing) -> None:
    await asyncio.to_thread(send, ctx, chat_id=chat_id, messages=messages, person_id=person.id if person else None)


def stored_draft(data: dict[str, Any]) -> ReportDraft | None:
    """The draft kept in the conversation state, or None (also for one written by an incompatible version)."""
    try:
        return ReportDraft.from_state(data)
    except ValueError:  # start over rather than guess
        return None


def _live(draft: ReportDraft | None, ctx: ServiceContext) -> bool:
    timeout = timedelta(minutes=ctx.settings.report_draft_timeout_minutes)
    return draft is not None and not draft.expired(ctx.clock.now(), timeout)


class LiveDraft(Filter):
    """Passes a message on with the chat's live report draft as `draft`.

    Without one (none, or expired) the message falls through to `draft_missing`, registered last in the
    report router, which tells the resident why (aiogram's context_addition_from_filter pattern).
    """

    async def __call__(self, message: Message, state: FSMContext, ctx: ServiceContext) -> bool | dict[str, Any]:
        draft = stored_draft(await state.get_data())
        return {"draft": draft} if _live(draft, ctx) else False


class ReportButton(Filter):
    """Passes a report button (after `ReportCb.filter`) of the chat's live draft on with it as `draft`.

    Stale, foreign or expired buttons fall through to `stale_button`, registered last.
    """

    async def __call__(self, query: CallbackQuery, state: FSMContext, ctx: ServiceContext,
                       callback_data: ReportCb) -> bool | dict[str, Any]:
        draft = stored_draft(await state.get_data())
        if draft is None or draft.draft_id != callback_data.draft or not _live(draft, ctx):
            return False
        return {"draft": draft}


async def tell_no_draft(state: FSMContext, ctx: ServiceContext, chat_id: int, person: Person | None) -> None:
    """Forget whatever draft the chat has and tell the resident it expired, or that there is none."""
    draft = stored_draft(await state.get_data())
    await state.clear()
    if draft is not None:
        text = _(DRAFT_EXPIRED).format(minutes=ctx.settings.report_draft_timeout_minutes)
    else:
        text = _("There is no report in progress. Tap “{button}” or send /report to start one.").format(
            button=_(REPORT_BUTTON))
    await reply(ctx, chat_id, person, Outgoing(text, main_keyboard(_)))


async def broken_report(query: CallbackQuery, state: FSMContext) -> None:
    """The draft cannot be submitted any more (consent withdrawn, a photo no longer valid): start over."""
    await query.answer(_("Something is wrong with this report; please start again with /report."), show_alert=True)
    await state.clear()


async def save(state: FSMContext, ctx: ServiceContext, draft: ReportDraft) -> None:
    draft.touched_at = ctx.clock.now()
    await state.set_data(draft.to_state())


def limit_text(_, exc: residents.ReportLimitReached, ctx: ServiceContext) -> str:  # noqa: ANN001
    return _("You have made {count} reports in the last hour, the most we accept from one person. "
             "Thank you for caring! Please try again after {time}.").format(
        count=exc.count, time=local_time(exc.retry_at, ctx.timezone, "%H:%M"))


def kinds_text() -> str:
    return _("📝 New report. What is the problem? Choose a kind:")


def kinds_keyboard_for(draft: ReportDraft, categories: Sequence[CategoryChoice],
                       shortcuts: Shortcuts | None = None) -> dict:
    """The kinds, below the one-tap `shortcuts` when given (services/report_shortcuts.py)."""
    return kinds_keyboard(_, draft.draft_id, categories, shortcuts.recent if shortcuts else (),
                          frequent=shortcuts.frequent if shortcuts else (), locale=current_locale(),
                          kind_name=lambda k: kind_label(k, _))


async def first_screen(ctx: ServiceContext, draft: ReportDraft, person: Person | None) -> tuple[str, dict]:
    """The text and keyboard of the report's first screen: one-tap categories, then the kinds."""
    categories = await asyncio.to_thread(report_choices.active_categories, ctx)
    shortcuts = await asyncio.to_thread(report_shortcuts.shortcut_categories, ctx,
                                        person_id=person.id if person else None)
    return kinds_text(), kinds_keyboard_for(draft, categories, shortcuts)


def evidence_prompt(draft: ReportDraft, category: CategoryChoice) -> Outgoing:
    if draft.editing and draft.located:
        text = _("📷 Send the new photos (up to {max}), then tap “{done}”.").format(
            max=MAX_PHOTOS, done=_(PHOTOS_DONE_BUTTON))
        return Outgoing(text, evidence_keyboard(_, ask_location=False, no_photo=not category.photo_required,
                                                photos_done=True))
    if category.photo_required:
        text = _("📷 Send one to three photos of the problem, as photos or as files (JPEG, PNG, WebP or HEIC). "
                 "Tip: a caption on the photo becomes the description.")
        return Outgoing(text, evidence_keyboard(_, ask_location=False, no_photo=False, photos_done=False))
    text = _("📷 A photo helps (up to three), but this category does not need one. Send photos, "
             "or share the location of the problem right away with the button below.")
    return Outgoing(text, evidence_keyboard(_, ask_location=True, no_photo=True, photos_done=False))


def location_prompt() -> str:
    return _("📍 Now share the location of the problem: tap the button below "
             "(or use 📎 → Location). Please send it from where the problem is.")


async def category_or_restart(draft: ReportDraft, state: FSMContext, ctx: ServiceContext, chat_id: int,
                              person: Person | None) -> CategoryChoice | None:
    try:
        return await asyncio.to_thread(report_choices.get_category, ctx, draft.category or "")
    except CategoryUnavailable:
        await state.set_state(ReportFlow.category)
        await save(state, ctx, draft)
        text, keyboard = await first_screen(ctx, draft, person)
        await reply(ctx, chat_id, person, Outgoing(
            _("This category is no longer offered; please choose another.") + "\n" + text, keyboard))
        return None


async def after_location(chat_id: int, state: FSMContext, ctx: ServiceContext, person: Person | None,
                         draft: ReportDraft, *, ack: str | None = None, lead: Sequence[Outgoing] = ()) -> None:
    """Go on to the description, or to the summary card when there is one already (or when editing).

    `ack` ("location received") goes with the description prompt; the card shows the place itself.
    """
    if draft.editing or draft.description:
        await to_confirm(chat_id, state, ctx, person, draft, *lead)
        return
    await state.set_state(ReportFlow.description)
    await save(state, ctx, draft)
    prompt = _("✏️ Describe the problem in a few words (up to {limit} characters).").format(
        limit=ctx.settings.report_description_max)
    text = f"{ack}\n\n{prompt}" if ack else prompt
    await reply(ctx, chat_id, person, *lead, Outgoing(text, cancel_keyboard(_)))


async def to_confirm(chat_id: int, state: FSMContext, ctx: ServiceContext, person: Person | None,
                     draft: ReportDraft, *lead: Outgoing) -> None:
    draft.editing = False
    await state.set_state(ReportFlow.confirm)
    await save(state, ctx, draft)
    text = await asyncio.to_thread(card_text, ctx, draft, current_locale())
    await reply(ctx, chat_id, person, *lead, Outgoing(text, card_keyboard(draft)))


def card_text(ctx: ServiceContext, draft: ReportDraft, locale: str) -> str:
    # Runs in a worker thread; aiogram's `_` works there because asyncio.to_thread copies the context.
    try:
        category = report_choices.get_category(ctx, draft.category or "").label(locale)
    except CategoryUnavailable:
        category = draft.category or "—"
    place = report_choices.place_label(ctx, grid_code=draft.grid_code, locale=locale) or "—"
    return "\n".join([
        _("📋 Please check your report:"),
        _("Category: {name}").format(name=html.escape(category)),
        _("Place: {place}").format(place=html.escape(place)),
        _("Coordinates: {lat:.5f}, {lon:.5f}").format(lat=draft.lat, lon=draft.lon),
        _("Photos: {count}").format(count=len(draft.photos)),
        _("Description: {text}").format(text=html.escape(draft.description or "—")),
    ])


def card_keyboard(draft: ReportDraft) -> dict:
    if draft.patrol:
        return patrol_card_keyboard(_, draft.draft_id)
    d = draft.draft_id
    return inline([
        [button(_("✅ Submit"), ReportCb(draft=d, act="submit")), button(_("✏️ Edit"), ReportCb(draft=d, act="edit"))],
        [button(_("✖ Cancel"), ReportCb(draft=d, act="cancel"))],
    ])


async def download(bot: Bot, file_id: str) -> bytes:
    buffer = await bot.download(file_id, destination=io.BytesIO())
    return buffer.getvalue()


DOWNLOAD_ERRORS = (TelegramAPIError, TelegramNetworkError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def fetch_photos(query: CallbackQuery, bot: Bot, draft: ReportDraft) -> list[bytes] | None:
    try:
        return [await download(bot, p.file_id) for p in draft.photos]
    except DOWNLOAD_ERRORS:
        log.warning("could not download report photos at submission", exc_info=True)
        await query.answer(_("I could not fetch your photos from Telegram just now. Please tap again."),
                           show_alert=True)
        return None
