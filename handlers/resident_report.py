"""The resident's report conversation: category → photos → location → (duplicate?) → description → card.

Handlers parse what the resident sent, call one service, and render the answer; the draft lives
in the conversation state (in the store, or Redis), so a restart mid-report loses nothing, and
nothing reaches the case store before Submit. A standard report with one photo:
/report, kind, category, photo (its caption is the description), location, Submit.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
from collections.abc import Sequence
from datetime import timedelta

import aiohttp
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.resident_ui import (
    NO_PHOTO_BUTTON,
    PHOTOS_DONE_BUTTON,
    PRIVACY_NOTICE,
    REPORT_BUTTON,
    ConsentCb,
    ReportCb,
    button,
    cancel_keyboard,
    category_keyboard,
    consent_keyboard,
    current_locale,
    evidence_keyboard,
    in_every_language,
    inline,
    kind_token,
    kinds_keyboard,
    kinds_of,
    main_keyboard,
)
from models.tables import Person
from onegrid.i18n import gettext_for
from services import reporting, residents
from services.cases import OutsideGrid
from services.context import ServiceContext
from services.photos import MAX_BYTES, PhotoProblem, PhotoRejected
from services.reporting import MAX_PHOTOS, CategoryChoice, ReportDraft, Submitted
from services.resident_views import kind_label, local_time, status_label
from services.residents import Outgoing

log = logging.getLogger(__name__)

IMAGE_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"})
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


class ReportFlow(StatesGroup):
    category = State()
    evidence = State()  # photos, then the location
    duplicate = State()
    description = State()
    confirm = State()


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    router = Router(name="resident-report")
    router.message.register(start_report, Command("report"))
    router.message.register(start_report, F.text.in_(in_every_language(REPORT_BUTTON)))
    router.callback_query.register(consent_then_report, ConsentCb.filter(F.act == "yes"))

    router.callback_query.register(show_kinds, ReportCb.filter(F.act == "kinds"))
    router.callback_query.register(show_kind, ReportCb.filter(F.act == "kind"))
    router.callback_query.register(choose_category, ReportCb.filter(F.act == "cat"))
    router.callback_query.register(cancel_by_button, ReportCb.filter(F.act == "cancel"))
    router.callback_query.register(same_problem, ReportCb.filter(F.act == "same"))
    router.callback_query.register(different_problem, ReportCb.filter(F.act == "diff"))
    router.callback_query.register(submit, ReportCb.filter(F.act == "submit"))
    router.callback_query.register(edit_menu, ReportCb.filter(F.act.in_({"edit", "back"})))
    router.callback_query.register(edit_field, ReportCb.filter(F.act.startswith("edit_")))

    evidence = StateFilter(ReportFlow.evidence)
    router.message.register(photo_received, evidence, F.photo | F.document)
    router.message.register(location_received, evidence, F.location)
    router.message.register(no_photo, evidence, F.text.in_(in_every_language(NO_PHOTO_BUTTON)))
    router.message.register(photos_done, evidence, F.text.in_(in_every_language(PHOTOS_DONE_BUTTON)))
    router.message.register(text_during_evidence, evidence, F.text, ~F.text.startswith("/"))
    router.message.register(description_received, ReportFlow.description, F.text, ~F.text.startswith("/"))
    router.message.register(location_out_of_turn, StateFilter(ReportFlow.description, ReportFlow.confirm,
                                                               ReportFlow.duplicate), F.location)
    router.message.register(something_else, StateFilter(ReportFlow))
    return router


# -- helpers ----------------------------------------------------------------------------------------

async def _send(ctx: ServiceContext, chat_id: int, person: Person | None, *messages: Outgoing) -> None:
    await asyncio.to_thread(residents.send, ctx, chat_id=chat_id, messages=messages,
                            person_id=person.id if person else None)


async def _draft(state: FSMContext, ctx: ServiceContext, chat_id: int, person: Person | None) -> ReportDraft | None:
    """The current draft, or None (and the resident told why) when there is none or it expired."""
    data = await state.get_data()
    try:
        draft = ReportDraft.from_state(data)
    except ValueError:  # a draft written by an incompatible version: start over rather than guess
        draft = None
    timeout = timedelta(minutes=ctx.settings.report_draft_timeout_minutes)
    if draft is not None and not draft.expired(ctx.clock.now(), timeout):
        return draft
    await state.clear()
    if draft is not None:
        text = _(reporting.DRAFT_EXPIRED).format(minutes=ctx.settings.report_draft_timeout_minutes)
    else:
        text = _("There is no report in progress. Tap “{button}” or send /report to start one.").format(
            button=_(REPORT_BUTTON))
    await _send(ctx, chat_id, person, Outgoing(text, main_keyboard(_)))
    return None


async def _save(state: FSMContext, ctx: ServiceContext, draft: ReportDraft) -> None:
    draft.touched_at = ctx.clock.now()
    await state.set_data(draft.to_state())


async def _callback_draft(query: CallbackQuery, cb: ReportCb, state: FSMContext, ctx: ServiceContext,
                          person: Person | None) -> ReportDraft | None:
    """The draft a report button belongs to; stale or foreign buttons are answered and refused."""
    data = await state.get_data()
    try:
        draft = ReportDraft.from_state(data)
    except ValueError:
        draft = None
    if draft is None or draft.draft_id != cb.draft:
        if person is not None:
            done = await asyncio.to_thread(reporting.receipt_for, ctx, person_id=person.id, draft_id=cb.draft)
            if done is not None:
                await query.answer(_("Already sent: case {number}.").format(number=done.number), show_alert=True)
                return None
        await query.answer(_("This button belongs to a report that is no longer open."), show_alert=True)
        return None
    if draft.expired(ctx.clock.now(), timedelta(minutes=ctx.settings.report_draft_timeout_minutes)):
        await query.answer()
        return await _draft(state, ctx, query.message.chat.id, person)  # tells about the expiry
    return draft


def _needs_consent(person: Person | None) -> bool:
    return person is None or person.consented_at is None or person.deleted_at is not None


# -- starting -------------------------------------------------------------------------------------------

async def start_report(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    chat_id = message.chat.id
    if _needs_consent(person):
        locale = current_locale()
        await _send(ctx, chat_id, person, Outgoing(_(PRIVACY_NOTICE), consent_keyboard(_, then="report", locale=locale)))
        return
    current = await state.get_state()
    await _begin(chat_id, state, ctx, person, replaced=bool(current and current.startswith("ReportFlow:")))


async def consent_then_report(query: CallbackQuery, callback_data: ConsentCb, state: FSMContext,
                              ctx: ServiceContext, person: Person | None) -> None:
    """"I agree": record consent, and when the consent was asked for a report, go straight on with it."""
    user = query.from_user
    chat_id = query.message.chat.id
    locale = current_locale()
    thanks = Outgoing(_("Thank you. You can now report problems; /delete removes your data at any time."),
                      main_keyboard(_))
    removed = Outgoing(None, edit_message_id=query.message.message_id)
    person = await asyncio.to_thread(
        residents.give_consent, ctx, telegram_user_id=user.id, display_name=user.full_name,
        username=user.username, telegram_language=locale,
        chat_id=chat_id, messages=[removed, thanks])
    await query.answer()
    if callback_data.then == "report":
        await _begin(chat_id, state, ctx, person, replaced=False)


async def _begin(chat_id: int, state: FSMContext, ctx: ServiceContext, person: Person, *, replaced: bool) -> None:
    try:
        await asyncio.to_thread(residents.report_allowed, ctx, person_id=person.id)
    except residents.ReportLimitReached as exc:
        await _send(ctx, chat_id, person, Outgoing(_limit_text(_, exc, ctx), main_keyboard(_)))
        return
    draft = ReportDraft.new(chat_id=chat_id, now=ctx.clock.now())
    await state.set_state(ReportFlow.category)
    await state.set_data(draft.to_state())
    categories = await asyncio.to_thread(reporting.active_categories, ctx)
    recent = await asyncio.to_thread(reporting.recent_categories, ctx, person_id=person.id)
    lead = _("The unfinished report was discarded.") + "\n" if replaced else ""
    await _send(ctx, chat_id, person, Outgoing(lead + _kinds_text(), _kinds_keyboard(draft, categories, recent)))


def _limit_text(_, exc: residents.ReportLimitReached, ctx: ServiceContext) -> str:  # noqa: ANN001
    return _("You have made {count} reports in the last hour, the most we accept from one person. "
             "Thank you for caring! Please try again after {time}.").format(
        count=exc.count, time=local_time(exc.retry_at, ctx.timezone, "%H:%M"))


# -- category -------------------------------------------------------------------------------------------

def _kinds_text() -> str:
    return _("📝 New report. What is the problem? Choose a kind:")


def _kinds_keyboard(draft: ReportDraft, categories: Sequence[CategoryChoice],
                    recent: Sequence[CategoryChoice]) -> dict:
    return kinds_keyboard(_, draft.draft_id, categories, recent, locale=current_locale(),
                          kind_name=lambda k: kind_label(k, _))


async def show_kinds(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                     person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    await query.answer()
    categories = await asyncio.to_thread(reporting.active_categories, ctx)
    recent = await asyncio.to_thread(reporting.recent_categories, ctx, person_id=person.id)
    await _send(ctx, query.message.chat.id, person,
                Outgoing(_kinds_text(), _kinds_keyboard(draft, categories, recent),
                         edit_message_id=query.message.message_id))


async def show_kind(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                    person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    await query.answer()
    categories = await asyncio.to_thread(reporting.active_categories, ctx)
    kind = next((k for k in kinds_of(categories) if kind_token(k) == callback_data.arg), None)
    if kind is None:  # the catalogue changed under the menu: show the kinds again
        text, keyboard = _kinds_text(), _kinds_keyboard(draft, categories, [])
    else:
        text = _("{kind}: choose the category.").format(kind=html.escape(kind_label(kind, _)))
        keyboard = category_keyboard(_, draft.draft_id, [c for c in categories if c.kind == kind],
                                     token=callback_data.arg, page=callback_data.page, locale=current_locale())
    await _send(ctx, query.message.chat.id, person,
                Outgoing(text, keyboard, edit_message_id=query.message.message_id))


async def choose_category(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                          person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    chat_id = query.message.chat.id
    try:
        category = await asyncio.to_thread(reporting.get_category, ctx, callback_data.arg)
    except reporting.CategoryUnavailable:
        await query.answer(_("This category is no longer offered; please choose another."), show_alert=True)
        return
    await query.answer()
    draft.category = category.code
    chosen = Outgoing(_("Category: {name}").format(name=html.escape(category.label(current_locale()))),
                      edit_message_id=query.message.message_id)
    if draft.editing and (draft.photos or not category.photo_required):
        await _to_confirm(chat_id, state, ctx, person, draft, chosen)
        return
    await state.set_state(ReportFlow.evidence)
    await _save(state, ctx, draft)
    prompt = _evidence_prompt(draft, category)
    if category.photo_required and not (draft.editing and draft.located):
        # No reply-keyboard button is needed before the first photo: the menu itself becomes the
        # prompt, one message fewer (the location button comes with the photo's acknowledgement).
        cancel = inline([[button(_("✖ Cancel"), ReportCb(draft=draft.draft_id, act="cancel"))]])
        await _send(ctx, chat_id, person, Outgoing(f"{chosen.text}\n\n{prompt.text}", cancel,
                                                   edit_message_id=query.message.message_id))
        return
    await _send(ctx, chat_id, person, chosen, prompt)


def _evidence_prompt(draft: ReportDraft, category: CategoryChoice) -> Outgoing:
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


# -- photos -----------------------------------------------------------------------------------------

def _photo_problem_text(problem: PhotoProblem) -> str:
    return {
        PhotoProblem.TOO_LARGE: _("This file is too large (over 20 MB). Please send a smaller picture."),
        PhotoProblem.NOT_AN_IMAGE: _("This is not a picture I can read. Please send a JPEG, PNG, WebP or HEIC image."),
        PhotoProblem.TOO_MANY_PIXELS: _("This picture has too many pixels. Please send an ordinary photo."),
        PhotoProblem.TRUNCATED: _("This picture arrived incomplete. Please send it again."),
    }[problem]


async def _download(bot: Bot, file_id: str) -> bytes:
    buffer = await bot.download(file_id, destination=io.BytesIO())
    return buffer.getvalue()


_DOWNLOAD_ERRORS = (TelegramAPIError, TelegramNetworkError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def photo_received(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                         bot: Bot) -> None:
    chat_id = message.chat.id
    draft = await _draft(state, ctx, chat_id, person)
    if draft is None:
        return
    if len(draft.photos) >= MAX_PHOTOS:
        await _send(ctx, chat_id, person, Outgoing(_(
            "You have already sent {max} photos, the most one report takes. Now share the location.").format(
            max=MAX_PHOTOS)))
        return
    if message.photo:
        size = message.photo[-1]
        file_id, unique_id, file_size = size.file_id, size.file_unique_id, size.file_size
    else:
        doc = message.document
        name = (doc.file_name or "").lower()
        if (doc.mime_type or "").lower() not in IMAGE_MIME_TYPES and not name.endswith(IMAGE_EXTENSIONS):
            await _send(ctx, chat_id, person, Outgoing(_photo_problem_text(PhotoProblem.NOT_AN_IMAGE)))
            return
        file_id, unique_id, file_size = doc.file_id, doc.file_unique_id, doc.file_size
    if file_size is not None and file_size > MAX_BYTES:
        await _send(ctx, chat_id, person, Outgoing(_photo_problem_text(PhotoProblem.TOO_LARGE)))
        return
    if any(p.file_unique_id == unique_id for p in draft.photos):
        await _send(ctx, chat_id, person, Outgoing(_("You have already sent this photo.")))
        return
    try:
        data = await _download(bot, file_id)
        await asyncio.to_thread(reporting.inspect_photo, data)
    except PhotoRejected as exc:
        await _send(ctx, chat_id, person, Outgoing(_photo_problem_text(exc.problem)))
        return
    except _DOWNLOAD_ERRORS:
        log.warning("could not download a report photo from Telegram", exc_info=True)
        await _send(ctx, chat_id, person, Outgoing(_("I could not fetch this photo from Telegram. "
                                                     "Please send it again.")))
        return
    draft.photos.append(reporting.DraftPhoto(file_id=file_id, file_unique_id=unique_id))
    lines = [_caption_as_description(draft, message.caption, ctx)] if message.caption else []
    await _save(state, ctx, draft)
    n = len(draft.photos)
    if draft.editing and draft.located:
        head = _("📷 Photo {n} received. Send more or tap “{done}”.").format(n=n, done=_(PHOTOS_DONE_BUTTON))
        keyboard = evidence_keyboard(_, ask_location=False, no_photo=False, photos_done=True)
    elif n < MAX_PHOTOS:
        head = _("📷 Photo {n} of {max} received. Send another one, or share the location of the problem "
                 "with the button below.").format(n=n, max=MAX_PHOTOS)
        keyboard = evidence_keyboard(_, ask_location=True, no_photo=False, photos_done=False)
    else:
        head = _("📷 Photo {n} of {max} received. Now share the location of the problem with the button below."
                 ).format(n=n, max=MAX_PHOTOS)
        keyboard = evidence_keyboard(_, ask_location=True, no_photo=False, photos_done=False)
    await _send(ctx, chat_id, person, Outgoing("\n".join([head, *filter(None, lines)]), keyboard))


def _caption_as_description(draft: ReportDraft, caption: str, ctx: ServiceContext) -> str:
    limit = ctx.settings.report_description_max
    try:
        text = reporting.clean_description(caption, limit=limit)
    except reporting.DescriptionTooLong as exc:
        return _("The caption is {length} characters long, over the limit of {limit}; "
                 "I will ask for a shorter description.").format(length=exc.length, limit=exc.limit)
    if not text:
        return ""
    draft.description = text
    return _("📝 Description: {text}").format(text=html.escape(text))


async def no_photo(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    chat_id = message.chat.id
    draft = await _draft(state, ctx, chat_id, person)
    if draft is None:
        return
    category = await _category_or_restart(draft, state, ctx, chat_id, person)
    if category is None:
        return
    if category.photo_required:
        await _send(ctx, chat_id, person, Outgoing(_("This kind of problem needs at least one photo.")))
        return
    draft.photo_skipped = True
    draft.photos = []
    if draft.editing and draft.located:
        await _to_confirm(chat_id, state, ctx, person, draft)
        return
    await _save(state, ctx, draft)
    await _send(ctx, chat_id, person, Outgoing(_location_prompt(), evidence_keyboard(
        _, ask_location=True, no_photo=False, photos_done=False)))


async def photos_done(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    chat_id = message.chat.id
    draft = await _draft(state, ctx, chat_id, person)
    if draft is None:
        return
    category = await _category_or_restart(draft, state, ctx, chat_id, person)
    if category is None:
        return
    if category.photo_required and not draft.photos:
        await _send(ctx, chat_id, person, Outgoing(_("This kind of problem needs at least one photo.")))
        return
    if draft.located:
        await _to_confirm(chat_id, state, ctx, person, draft)
    else:
        await _send(ctx, chat_id, person, Outgoing(_location_prompt(), evidence_keyboard(
            _, ask_location=True, no_photo=False, photos_done=False)))


def _location_prompt() -> str:
    return _("📍 Now share the location of the problem: tap the button below "
             "(or use 📎 → Location). Please send it from where the problem is.")


async def _category_or_restart(draft: ReportDraft, state: FSMContext, ctx: ServiceContext, chat_id: int,
                               person: Person | None) -> CategoryChoice | None:
    try:
        return await asyncio.to_thread(reporting.get_category, ctx, draft.category or "")
    except reporting.CategoryUnavailable:
        await state.set_state(ReportFlow.category)
        await _save(state, ctx, draft)
        categories = await asyncio.to_thread(reporting.active_categories, ctx)
        await _send(ctx, chat_id, person, Outgoing(
            _("This category is no longer offered; please choose another.") + "\n" + _kinds_text(),
            _kinds_keyboard(draft, categories, [])))
        return None


# -- location ---------------------------------------------------------------------------------------

async def location_received(message: Message, state: FSMContext, ctx: ServiceContext,
                            person: Person | None) -> None:
    chat_id = message.chat.id
    draft = await _draft(state, ctx, chat_id, person)
    if draft is None:
        return
    if message.forward_origin is not None or message.venue is not None or message.via_bot is not None:
        await _send(ctx, chat_id, person, Outgoing(_(
            "Please share your own current location with the 📍 button. A forwarded location or a place "
            "picked from a list does not show where you are.")))
        return
    category = await _category_or_restart(draft, state, ctx, chat_id, person)
    if category is None:
        return
    if category.photo_required and not draft.photos:
        await _send(ctx, chat_id, person, Outgoing(_(
            "This kind of problem needs a photo first. Please send one, then the location.")))
        return
    loc = message.location
    locale = current_locale()
    try:
        place = await asyncio.to_thread(reporting.locate, ctx, lat=loc.latitude, lon=loc.longitude, locale=locale)
    except OutsideGrid:
        await _send(ctx, chat_id, person, Outgoing(_(
            "📍 This place ({lat:.5f}, {lon:.5f}) is outside the area OneGrid covers, so I cannot take the report "
            "there. Please share the location of the problem itself, from where it is.").format(
            lat=loc.latitude, lon=loc.longitude)))
        return
    draft.lat, draft.lon, draft.accuracy_m = loc.latitude, loc.longitude, loc.horizontal_accuracy
    draft.grid_code = place.grid_code
    got = _("📍 Location received: {place}.").format(place=html.escape(place.name))
    if not draft.editing:
        duplicate = await asyncio.to_thread(reporting.find_duplicate, ctx, category_code=category.code,
                                            lat=draft.lat, lon=draft.lon, person_id=person.id if person else None)
        if duplicate is not None:
            draft.duplicate_case_id = duplicate.case_id
            await state.set_state(ReportFlow.duplicate)
            await _save(state, ctx, draft)
            await _send(ctx, chat_id, person, _duplicate_card(draft, duplicate, category, locale, ctx, lead=got))
            return
    await _after_location(chat_id, state, ctx, person, draft, ack=got)


def _duplicate_card(draft: ReportDraft, dup: reporting.Duplicate, category: CategoryChoice, locale: str,
                    ctx: ServiceContext, *, lead: str) -> Outgoing:
    lines = [
        lead,
        "",
        _("🔁 This may already be reported: case {number}, {category}, {distance} m from you, reported {when}, "
          "status: {status}.").format(number=dup.number, category=html.escape(category.label(locale)),
                                      distance=round(dup.distance_m), when=local_time(dup.created_at, ctx.timezone),
                                      status=status_label(dup.status, _)),
    ]
    if dup.description:
        lines.append(_("Its description: {text}").format(text=html.escape(dup.description[:300])))
    if dup.already_following:
        lines.append(_("You already follow this case."))
    lines.append(_("Is it the same problem? Then I will add your report to it and keep you posted."))
    keyboard = inline([
        [button(_("✅ The same problem"), ReportCb(draft=draft.draft_id, act="same", arg=str(dup.case_id)))],
        [button(_("➕ A different problem"), ReportCb(draft=draft.draft_id, act="diff"))],
        [button(_("✖ Cancel"), ReportCb(draft=draft.draft_id, act="cancel"))],
    ])
    return Outgoing("\n".join(lines), keyboard)


async def _after_location(chat_id: int, state: FSMContext, ctx: ServiceContext, person: Person | None,
                          draft: ReportDraft, *, ack: str | None = None, lead: Sequence[Outgoing] = ()) -> None:
    """Go on to the description, or to the summary card when there is one already (or when editing).

    `ack` ("location received") goes with the description prompt; the card shows the place itself.
    """
    if draft.editing or draft.description:
        await _to_confirm(chat_id, state, ctx, person, draft, *lead)
        return
    await state.set_state(ReportFlow.description)
    await _save(state, ctx, draft)
    prompt = _("✏️ Describe the problem in a few words (up to {limit} characters).").format(
        limit=ctx.settings.report_description_max)
    text = f"{ack}\n\n{prompt}" if ack else prompt
    await _send(ctx, chat_id, person, *lead, Outgoing(text, cancel_keyboard(_)))


async def location_out_of_turn(message: Message, state: FSMContext, ctx: ServiceContext,
                               person: Person | None) -> None:
    await _send(ctx, message.chat.id, person, Outgoing(_(
        "I already have the location. To change it, tap ✏️ Edit on the summary card.")))


# -- duplicates -------------------------------------------------------------------------------------

async def same_problem(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None, bot: Bot) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    if not callback_data.arg.isdigit() or int(callback_data.arg) != draft.duplicate_case_id:
        await query.answer(_("This button belongs to a report that is no longer open."), show_alert=True)
        return
    photos = await _fetch_photos(query, bot, draft)
    if photos is None:
        return
    card_id = query.message.message_id
    try:
        done = await asyncio.to_thread(reporting.follow_case, ctx, person_id=person.id, draft=draft,
                                       case_id=draft.duplicate_case_id, photos=photos,
                                       render=lambda r, locale: _followed_messages(r, locale, card_id))
    except reporting.CaseClosedMeanwhile:
        await query.answer()
        draft.duplicate_case_id = None
        await _after_location(query.message.chat.id, state, ctx, person, draft, lead=[
            Outgoing(None, edit_message_id=card_id),
            Outgoing(_("That case was closed in the meantime, so yours will be a new report."))])
        return
    except residents.ReportLimitReached as exc:
        await query.answer()
        await _send(ctx, query.message.chat.id, person, Outgoing(_limit_text(_, exc, ctx)))
        return
    except (residents.ConsentRequired, PhotoRejected):
        await query.answer(_("Something is wrong with this report; please start again with /report."),
                           show_alert=True)
        await state.clear()
        return
    await state.clear()
    await query.answer(_("Added to case {number}.").format(number=done.number))


def _followed_messages(result: Submitted, locale: str, card_id: int) -> list[Outgoing]:
    _ = gettext_for(locale)
    return [
        Outgoing(None, edit_message_id=card_id),
        Outgoing(_("👍 Thank you! Your report was added to case <b>{number}</b>. "
                   "I will tell you at each step; /my shows your cases.").format(number=result.number),
                 main_keyboard(_)),
    ]


async def different_problem(query: CallbackQuery, callback_data: ReportCb, state: FSMContext,
                            ctx: ServiceContext, person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    await query.answer()
    draft.duplicate_case_id = None
    await _after_location(query.message.chat.id, state, ctx, person, draft,
                          lead=[Outgoing(None, edit_message_id=query.message.message_id)])


# -- description --------------------------------------------------------------------------------------

async def text_during_evidence(message: Message, state: FSMContext, ctx: ServiceContext,
                               person: Person | None) -> None:
    """Words typed before the location: keep them as the description rather than refuse them."""
    chat_id = message.chat.id
    got = await _draft_and_description(message, state, ctx, person)
    if got is None:
        return
    draft, text = got
    if text:
        draft.description = text
        await _save(state, ctx, draft)
    hint = (_("Now send a photo of the problem.") if not draft.photos and not draft.photo_skipped
            else _location_prompt())
    await _send(ctx, chat_id, person, Outgoing(_("📝 Noted as the description.") + "\n" + hint))


async def _draft_and_description(message: Message, state: FSMContext, ctx: ServiceContext,
                                 person: Person | None) -> tuple[ReportDraft, str] | None:
    """The chat's draft and the message text cleaned as a description; None (after telling the
    resident why, when it is the text) if there is no draft or the text is too long."""
    chat_id = message.chat.id
    draft = await _draft(state, ctx, chat_id, person)
    if draft is None:
        return None
    try:
        text = reporting.clean_description(message.text, limit=ctx.settings.report_description_max)
    except reporting.DescriptionTooLong as exc:
        await _send(ctx, chat_id, person, Outgoing(
            _("Your text is {length} characters long; please keep it within {limit} characters.").format(
                length=exc.length, limit=exc.limit)))
        return None
    return draft, text


async def description_received(message: Message, state: FSMContext, ctx: ServiceContext,
                               person: Person | None) -> None:
    chat_id = message.chat.id
    got = await _draft_and_description(message, state, ctx, person)
    if got is None:
        return
    draft, text = got
    if not text:
        await _send(ctx, chat_id, person, Outgoing(_("Please describe the problem in a few words.")))
        return
    draft.description = text
    await _to_confirm(chat_id, state, ctx, person, draft)


# -- the summary card ---------------------------------------------------------------------------------

async def _to_confirm(chat_id: int, state: FSMContext, ctx: ServiceContext, person: Person | None,
                      draft: ReportDraft, *lead: Outgoing) -> None:
    draft.editing = False
    await state.set_state(ReportFlow.confirm)
    await _save(state, ctx, draft)
    text = await asyncio.to_thread(_card_text, ctx, draft, current_locale())
    await _send(ctx, chat_id, person, *lead, Outgoing(text, _card_keyboard(draft)))


def _card_text(ctx: ServiceContext, draft: ReportDraft, locale: str) -> str:
    # Runs in a worker thread; aiogram's `_` works there because asyncio.to_thread copies the context.
    try:
        category = reporting.get_category(ctx, draft.category or "").label(locale)
    except reporting.CategoryUnavailable:
        category = draft.category or "—"
    place = reporting.place_label(ctx, grid_code=draft.grid_code, locale=locale) or "—"
    return "\n".join([
        _("📋 Please check your report:"),
        _("Category: {name}").format(name=html.escape(category)),
        _("Place: {place}").format(place=html.escape(place)),
        _("Coordinates: {lat:.5f}, {lon:.5f}").format(lat=draft.lat, lon=draft.lon),
        _("Photos: {count}").format(count=len(draft.photos)),
        _("Description: {text}").format(text=html.escape(draft.description or "—")),
    ])


def _card_keyboard(draft: ReportDraft) -> dict:
    d = draft.draft_id
    return inline([
        [button(_("✅ Submit"), ReportCb(draft=d, act="submit")), button(_("✏️ Edit"), ReportCb(draft=d, act="edit"))],
        [button(_("✖ Cancel"), ReportCb(draft=d, act="cancel"))],
    ])


async def edit_menu(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                    person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    await query.answer()
    d = draft.draft_id
    if callback_data.act == "back":
        keyboard = _card_keyboard(draft)
    else:
        keyboard = inline([
            [button(_("🗂 Category"), ReportCb(draft=d, act="edit_cat")),
             button(_("📷 Photos"), ReportCb(draft=d, act="edit_photo"))],
            [button(_("📍 Location"), ReportCb(draft=d, act="edit_loc")),
             button(_("✏️ Description"), ReportCb(draft=d, act="edit_desc"))],
            [button(_("⬅ Back"), ReportCb(draft=d, act="back"))],
        ])
    await _send(ctx, query.message.chat.id, person,
                Outgoing(None, keyboard, edit_message_id=query.message.message_id))


async def edit_field(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                     person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    await query.answer()
    chat_id = query.message.chat.id
    card_done = Outgoing(None, edit_message_id=query.message.message_id)  # the old card loses its buttons
    draft.editing = True
    what = callback_data.act
    if what == "edit_cat":
        await state.set_state(ReportFlow.category)
        await _save(state, ctx, draft)
        categories = await asyncio.to_thread(reporting.active_categories, ctx)
        await _send(ctx, chat_id, person, card_done, Outgoing(_kinds_text(), _kinds_keyboard(draft, categories, [])))
    elif what == "edit_photo":
        category = await _category_or_restart(draft, state, ctx, chat_id, person)
        if category is None:
            return
        draft.photos = []
        await state.set_state(ReportFlow.evidence)
        await _save(state, ctx, draft)
        await _send(ctx, chat_id, person, card_done, _evidence_prompt(draft, category))
    elif what == "edit_loc":
        await state.set_state(ReportFlow.evidence)
        await _save(state, ctx, draft)
        await _send(ctx, chat_id, person, card_done, Outgoing(_location_prompt(), evidence_keyboard(
            _, ask_location=True, no_photo=False, photos_done=False)))
    else:
        await state.set_state(ReportFlow.description)
        await _save(state, ctx, draft)
        await _send(ctx, chat_id, person, card_done, Outgoing(
            _("✏️ Send the new description (up to {limit} characters).").format(
                limit=ctx.settings.report_description_max), cancel_keyboard(_)))


async def _fetch_photos(query: CallbackQuery, bot: Bot, draft: ReportDraft) -> list[bytes] | None:
    try:
        return [await _download(bot, p.file_id) for p in draft.photos]
    except _DOWNLOAD_ERRORS:
        log.warning("could not download report photos at submission", exc_info=True)
        await query.answer(_("I could not fetch your photos from Telegram just now. Please tap again."),
                           show_alert=True)
        return None


async def submit(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                 person: Person | None, bot: Bot) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    if await state.get_state() != ReportFlow.confirm.state or draft.category is None or not draft.located:
        await query.answer(_("Please finish the report first."), show_alert=True)
        return
    chat_id = query.message.chat.id
    photos = await _fetch_photos(query, bot, draft)
    if photos is None:
        return
    card_id = query.message.message_id
    try:
        done = await asyncio.to_thread(reporting.submit_report, ctx, person_id=person.id, draft=draft,
                                       photos=photos,
                                       render=lambda r, locale: _submitted_messages(r, locale, card_id, ctx))
    except residents.ReportLimitReached as exc:
        await query.answer()
        await _send(ctx, chat_id, person, Outgoing(_limit_text(_, exc, ctx)))
        return
    except OutsideGrid:
        await query.answer()
        draft.lat = draft.lon = draft.grid_code = None
        draft.editing = True
        await state.set_state(ReportFlow.evidence)
        await _save(state, ctx, draft)
        await _send(ctx, chat_id, person, Outgoing(None, edit_message_id=card_id), Outgoing(
            _("The map has changed and this place is no longer inside a grid. Please share the location again."),
            evidence_keyboard(_, ask_location=True, no_photo=False, photos_done=False)))
        return
    except reporting.CategoryUnavailable:
        await query.answer()
        draft.editing = True
        await _category_or_restart(draft, state, ctx, chat_id, person)
        return
    except (residents.ConsentRequired, PhotoRejected):
        await query.answer(_("Something is wrong with this report; please start again with /report."),
                           show_alert=True)
        await state.clear()
        return
    await state.clear()
    if done.created:
        await query.answer(_("Sent."))
    else:
        await query.answer(_("Already sent: case {number}.").format(number=done.number), show_alert=True)


def _submitted_messages(result: Submitted, locale: str, card_id: int, ctx: ServiceContext) -> list[Outgoing]:
    _ = gettext_for(locale)
    text = _("✅ Registered as case <b>{number}</b>.").format(number=result.number)
    if result.handle_due_at is not None:
        text += "\n" + _("It should be handled by {due}.").format(due=local_time(result.handle_due_at, ctx.timezone))
    text += "\n" + _("I will tell you at each step; /my shows your cases.")
    return [Outgoing(None, edit_message_id=card_id), Outgoing(text, main_keyboard(_))]


# -- leaving ------------------------------------------------------------------------------------------

async def cancel_by_button(query: CallbackQuery, callback_data: ReportCb, state: FSMContext,
                           ctx: ServiceContext, person: Person | None) -> None:
    draft = await _callback_draft(query, callback_data, state, ctx, person)
    if draft is None:
        return
    await state.clear()
    await query.answer()
    await _send(ctx, query.message.chat.id, person, Outgoing(None, edit_message_id=query.message.message_id),
                Outgoing(cancelled_text(), main_keyboard(_)))


def cancelled_text() -> str:
    return _("Report cancelled. Nothing was stored.")


async def something_else(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    """Anything the current step cannot use (a sticker, a voice note, a command typed mid-step)."""
    chat_id = message.chat.id
    draft = await _draft(state, ctx, chat_id, person)
    if draft is None:
        return
    current = await state.get_state()
    hints = {
        ReportFlow.category.state: _("Please choose a category with the buttons above."),
        ReportFlow.evidence.state: (_("Please send a photo of the problem.") if not draft.photos
                                    and not draft.photo_skipped else _location_prompt()),
        ReportFlow.duplicate.state: _("Please answer with the buttons above: the same problem or a different one?"),
        ReportFlow.description.state: _("Please describe the problem in a few words."),
        ReportFlow.confirm.state: _("Please check the summary above and tap ✅ Submit, ✏️ Edit or ✖ Cancel."),
    }
    hint = hints.get(current, _("Please continue with the buttons above."))
    await _send(ctx, chat_id, person, Outgoing(hint + "\n" + _("/cancel stops this report.")))


__all__ = ["ReportFlow", "build_router", "cancelled_text"]
