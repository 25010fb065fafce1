"""The resident's report conversation: category → photos → location → (duplicate?) → description → card.

Handlers parse what the resident sent, call one service, and render the answer; the draft lives
in the conversation state (in the store, or Redis), so a restart mid-report loses nothing, and
nothing reaches the case store before Submit. A standard report with one photo: /report, a one-tap
category from the first screen (services/report_shortcuts.py; else kind, then category), photo (its
caption is the description), location, description (unless captioned), Submit: six when the category
is one tap or the photo has a caption, seven otherwise.

This module starts the report, picks the category and composes the router; the evidence steps are in
handlers/resident_report_evidence.py, the description and summary card in handlers/resident_report_card.py,
what they share (states, the draft-injecting filters, prompts) in handlers/resident_report_kit.py.
"""

from __future__ import annotations

import asyncio
import html

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing
from bot.renderers.resident_views import kind_label
from bot.resident_ui import (
    NO_PHOTO_BUTTON,
    PHOTOS_DONE_BUTTON,
    PRIVACY_NOTICE,
    REPORT_BUTTON,
    ConsentCb,
    ReportCb,
    button,
    category_keyboard,
    consent_keyboard,
    current_locale,
    in_every_language,
    inline,
    kind_token,
    kinds_of,
    main_keyboard,
)
from handlers import resident_report_card as card
from handlers import resident_report_evidence as evidence
from handlers.resident_report_kit import (
    LiveDraft,
    ReportButton,
    ReportFlow,
    evidence_prompt,
    first_screen,
    kinds_keyboard_for,
    kinds_text,
    limit_text,
    location_prompt,
    reply,
    save,
    stored_draft,
    tell_no_draft,
    to_confirm,
)
from models.events.resident import ReplyTo
from models.tables import Person
from services import report_choices, reporting, residents
from services.context import ServiceContext
from services.report_draft import DRAFT_STATE_PREFIX, CategoryUnavailable, ReportDraft


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own.

    Handlers that need the draft get it from `LiveDraft` / `ReportButton`; updates without a live draft
    reach `draft_missing` / `stale_button`, registered last.
    """
    router = Router(name="resident-report")
    router.message.register(start_report, Command("report"))
    router.message.register(start_report, F.text.in_(in_every_language(REPORT_BUTTON)))
    router.callback_query.register(consent_then_report, ConsentCb.filter(F.act == "yes"))

    live = ReportButton()
    router.callback_query.register(show_kinds, ReportCb.filter(F.act == "kinds"), live)
    router.callback_query.register(show_kind, ReportCb.filter(F.act == "kind"), live)
    router.callback_query.register(choose_category, ReportCb.filter(F.act == "cat"), live)
    router.callback_query.register(cancel_by_button, ReportCb.filter(F.act == "cancel"), live)
    router.callback_query.register(evidence.same_problem, ReportCb.filter(F.act == "same"), live)
    router.callback_query.register(evidence.different_problem, ReportCb.filter(F.act == "diff"), live)
    router.callback_query.register(card.submit, ReportCb.filter(F.act == "submit"), live)
    router.callback_query.register(card.edit_menu, ReportCb.filter(F.act.in_({"edit", "back"})), live)
    router.callback_query.register(card.edit_field, ReportCb.filter(F.act.startswith("edit_")), live)
    router.callback_query.register(stale_button, ReportCb.filter())

    in_evidence, draft = StateFilter(ReportFlow.evidence), LiveDraft()
    router.message.register(evidence.photo_received, in_evidence, F.photo | F.document, draft)
    router.message.register(evidence.location_received, in_evidence, F.location, draft)
    router.message.register(evidence.no_photo, in_evidence, F.text.in_(in_every_language(NO_PHOTO_BUTTON)), draft)
    router.message.register(evidence.photos_done, in_evidence, F.text.in_(in_every_language(PHOTOS_DONE_BUTTON)),
                            draft)
    router.message.register(card.text_during_evidence, in_evidence, F.text, ~F.text.startswith("/"), draft)
    router.message.register(card.description_received, ReportFlow.description, F.text, ~F.text.startswith("/"),
                            draft)
    router.message.register(evidence.location_out_of_turn, StateFilter(
        ReportFlow.description, ReportFlow.confirm, ReportFlow.duplicate), F.location)
    router.message.register(something_else, StateFilter(ReportFlow), draft)
    router.message.register(draft_missing, StateFilter(ReportFlow))
    return router


def _needs_consent(person: Person | None) -> bool:
    return person is None or person.consented_at is None or person.deleted_at is not None


async def start_report(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    chat_id = message.chat.id
    if _needs_consent(person):
        locale = current_locale()
        await reply(ctx, chat_id, person,
                    Outgoing(_(PRIVACY_NOTICE), consent_keyboard(_, then="report", locale=locale)))
        return
    current = await state.get_state()
    await begin(chat_id, state, ctx, person, replaced=bool(current and current.startswith(DRAFT_STATE_PREFIX)))


async def consent_then_report(query: CallbackQuery, callback_data: ConsentCb, state: FSMContext,
                              ctx: ServiceContext, person: Person | None) -> None:
    """"I agree": record consent, and when the consent was asked for a report, go straight on with it."""
    user = query.from_user
    chat_id = query.message.chat.id
    person = await asyncio.to_thread(
        residents.give_consent, ctx, telegram_user_id=user.id, display_name=user.full_name,
        username=user.username, telegram_language=current_locale(),
        reply_to=ReplyTo(chat_id, query.message.message_id))
    await query.answer()
    if callback_data.then == "report":
        await begin(chat_id, state, ctx, person, replaced=False)


async def begin(chat_id: int, state: FSMContext, ctx: ServiceContext, person: Person, *, replaced: bool) -> None:
    try:
        await asyncio.to_thread(residents.report_allowed, ctx, person_id=person.id)
    except residents.ReportLimitReached as exc:
        await reply(ctx, chat_id, person, Outgoing(limit_text(_, exc, ctx), main_keyboard(_)))
        return
    draft = ReportDraft.new(chat_id=chat_id, now=ctx.clock.now())
    await state.set_state(ReportFlow.category)
    await state.set_data(draft.to_state())
    text, keyboard = await first_screen(ctx, draft, person)
    lead = _("The unfinished report was discarded.") + "\n" if replaced else ""
    await reply(ctx, chat_id, person, Outgoing(lead + text, keyboard))


async def show_kinds(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                     person: Person | None, draft: ReportDraft) -> None:
    await query.answer()
    text, keyboard = await first_screen(ctx, draft, person)
    await reply(ctx, query.message.chat.id, person,
                Outgoing(text, keyboard, edit_message_id=query.message.message_id))


async def show_kind(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                    person: Person | None, draft: ReportDraft) -> None:
    await query.answer()
    categories = await asyncio.to_thread(report_choices.active_categories, ctx)
    kind = next((k for k in kinds_of(categories) if kind_token(k) == callback_data.arg), None)
    if kind is None:  # the catalogue changed under the menu: show the kinds again
        text, keyboard = kinds_text(), kinds_keyboard_for(draft, categories)
    else:
        text = _("{kind}: choose the category.").format(kind=html.escape(kind_label(kind, _)))
        keyboard = category_keyboard(_, draft.draft_id, [c for c in categories if c.kind == kind],
                                     token=callback_data.arg, page=callback_data.page, locale=current_locale())
    await reply(ctx, query.message.chat.id, person,
                Outgoing(text, keyboard, edit_message_id=query.message.message_id))


async def choose_category(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                          person: Person | None, draft: ReportDraft) -> None:
    chat_id = query.message.chat.id
    try:
        category = await asyncio.to_thread(report_choices.get_category, ctx, callback_data.arg)
    except CategoryUnavailable:
        await query.answer(_("This category is no longer offered; please choose another."), show_alert=True)
        return
    await query.answer()
    draft.category = category.code
    chosen = Outgoing(_("Category: {name}").format(name=html.escape(category.label(current_locale()))),
                      edit_message_id=query.message.message_id)
    if draft.editing and (draft.photos or not category.photo_required):
        await to_confirm(chat_id, state, ctx, person, draft, chosen)
        return
    await state.set_state(ReportFlow.evidence)
    await save(state, ctx, draft)
    prompt = evidence_prompt(draft, category)
    if category.photo_required and not (draft.editing and draft.located):
        # No reply-keyboard button is needed before the first photo: the menu itself becomes the
        # prompt, one message fewer (the location button comes with the photo's acknowledgement).
        cancel = inline([[button(_("✖ Cancel"), ReportCb(draft=draft.draft_id, act="cancel"))]])
        await reply(ctx, chat_id, person, Outgoing(f"{chosen.text}\n\n{prompt.text}", cancel,
                                                   edit_message_id=query.message.message_id))
        return
    await reply(ctx, chat_id, person, chosen, prompt)


async def cancel_by_button(query: CallbackQuery, callback_data: ReportCb, state: FSMContext,
                           ctx: ServiceContext, person: Person | None, draft: ReportDraft) -> None:
    await state.clear()
    await query.answer()
    await reply(ctx, query.message.chat.id, person, Outgoing(None, edit_message_id=query.message.message_id),
                Outgoing(cancelled_text(), main_keyboard(_)))


def cancelled_text() -> str:
    return _("Report cancelled. Nothing was stored.")


async def something_else(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                         draft: ReportDraft) -> None:
    """Anything the current step cannot use (a sticker, a voice note, a command typed mid-step)."""
    chat_id = message.chat.id
    current = await state.get_state()
    hints = {
        ReportFlow.category.state: _("Please choose a category with the buttons above."),
        ReportFlow.evidence.state: (_("Please send a photo of the problem.") if not draft.photos
                                    and not draft.photo_skipped else location_prompt()),
        ReportFlow.duplicate.state: _("Please answer with the buttons above: the same problem or a different one?"),
        ReportFlow.description.state: _("Please describe the problem in a few words."),
        ReportFlow.confirm.state: _("Please check the summary above and tap ✅ Submit, ✏️ Edit or ✖ Cancel."),
    }
    hint = hints.get(current, _("Please continue with the buttons above."))
    await reply(ctx, chat_id, person, Outgoing(hint + "\n" + _("/cancel stops this report.")))


async def draft_missing(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    """A message in the report conversation without a live draft: it expired, or was lost."""
    await tell_no_draft(state, ctx, message.chat.id, person)


async def stale_button(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None) -> None:
    """A report button no live draft claims: expired, already sent, or from a report no longer open."""
    draft = stored_draft(await state.get_data())
    if draft is not None and draft.draft_id == callback_data.draft:
        await query.answer()
        await tell_no_draft(state, ctx, query.message.chat.id, person)  # this chat's draft, expired
        return
    if person is not None:
        done = await asyncio.to_thread(reporting.receipt_for, ctx, person_id=person.id, draft_id=callback_data.draft)
        if done is not None:
            await query.answer(_("Already sent: case {number}.").format(number=done.number), show_alert=True)
            return
    await query.answer(_("This button belongs to a report that is no longer open."), show_alert=True)


__all__ = ["ReportFlow", "build_router", "cancelled_text"]
