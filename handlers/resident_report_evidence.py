"""The report conversation's evidence steps: photos (as photos or files), the location, a possible duplicate.

Handlers receive the live draft from `LiveDraft` / `ReportButton` (handlers/resident_report_kit.py).
"""

from __future__ import annotations

import asyncio
import html
import logging

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing
from bot.renderers.resident_views import status_label
from bot.resident_ui import PHOTOS_DONE_BUTTON, ReportCb, button, current_locale, evidence_keyboard, inline
from handlers.resident_report_kit import (
    DOWNLOAD_ERRORS,
    ReportFlow,
    broken_report,
    after_location,
    category_or_restart,
    download,
    fetch_photos,
    limit_text,
    location_prompt,
    reply,
    save,
    to_confirm,
)
from models.events.resident import ReplyTo
from models.tables import Person
from services import report_choices, reporting, residents
from services.cases import OutsideGrid
from services.context import ServiceContext
from services.photos import MAX_BYTES, PhotoProblem, PhotoRejected
from services.report_choices import CategoryChoice
from services.report_draft import MAX_PHOTOS, DescriptionTooLong, DraftPhoto, ReportDraft, clean_description
from services.resident_views import local_time

log = logging.getLogger(__name__)

IMAGE_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"})
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


def _photo_problem_text(problem: PhotoProblem) -> str:
    return {
        PhotoProblem.TOO_LARGE: _("This file is too large (over 20 MB). Please send a smaller picture."),
        PhotoProblem.NOT_AN_IMAGE: _("This is not a picture I can read. Please send a JPEG, PNG, WebP or HEIC image."),
        PhotoProblem.TOO_MANY_PIXELS: _("This picture has too many pixels. Please send an ordinary photo."),
        PhotoProblem.TRUNCATED: _("This picture arrived incomplete. Please send it again."),
    }[problem]


async def photo_received(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                         bot: Bot, draft: ReportDraft) -> None:
    chat_id = message.chat.id
    if len(draft.photos) >= MAX_PHOTOS:
        await reply(ctx, chat_id, person, Outgoing(_(
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
            await reply(ctx, chat_id, person, Outgoing(_photo_problem_text(PhotoProblem.NOT_AN_IMAGE)))
            return
        file_id, unique_id, file_size = doc.file_id, doc.file_unique_id, doc.file_size
    if file_size is not None and file_size > MAX_BYTES:
        await reply(ctx, chat_id, person, Outgoing(_photo_problem_text(PhotoProblem.TOO_LARGE)))
        return
    if any(p.file_unique_id == unique_id for p in draft.photos):
        await reply(ctx, chat_id, person, Outgoing(_("You have already sent this photo.")))
        return
    try:
        data = await download(bot, file_id)
        await asyncio.to_thread(report_choices.inspect_photo, data)
    except PhotoRejected as exc:
        await reply(ctx, chat_id, person, Outgoing(_photo_problem_text(exc.problem)))
        return
    except DOWNLOAD_ERRORS:
        log.warning("could not download a report photo from Telegram", exc_info=True)
        await reply(ctx, chat_id, person, Outgoing(_("I could not fetch this photo from Telegram. "
                                                     "Please send it again.")))
        return
    draft.photos.append(DraftPhoto(file_id=file_id, file_unique_id=unique_id))
    lines = [_caption_as_description(draft, message.caption, ctx)] if message.caption else []
    await save(state, ctx, draft)
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
    await reply(ctx, chat_id, person, Outgoing("\n".join([head, *filter(None, lines)]), keyboard))


def _caption_as_description(draft: ReportDraft, caption: str, ctx: ServiceContext) -> str:
    limit = ctx.settings.report_description_max
    try:
        text = clean_description(caption, limit=limit)
    except DescriptionTooLong as exc:
        return _("The caption is {length} characters long, over the limit of {limit}; "
                 "I will ask for a shorter description.").format(length=exc.length, limit=exc.limit)
    if not text:
        return ""
    draft.description = text
    return _("📝 Description: {text}").format(text=html.escape(text))


async def no_photo(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                   draft: ReportDraft) -> None:
    chat_id = message.chat.id
    category = await category_or_restart(draft, state, ctx, chat_id, person)
    if category is None:
        return
    if category.photo_required:
        await reply(ctx, chat_id, person, Outgoing(_("This kind of problem needs at least one photo.")))
        return
    draft.photo_skipped = True
    draft.photos = []
    if draft.editing and draft.located:
        await to_confirm(chat_id, state, ctx, person, draft)
        return
    await save(state, ctx, draft)
    await reply(ctx, chat_id, person, Outgoing(location_prompt(), evidence_keyboard(
        _, ask_location=True, no_photo=False, photos_done=False)))


async def photos_done(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None,
                      draft: ReportDraft) -> None:
    chat_id = message.chat.id
    category = await category_or_restart(draft, state, ctx, chat_id, person)
    if category is None:
        return
    if category.photo_required and not draft.photos:
        await reply(ctx, chat_id, person, Outgoing(_("This kind of problem needs at least one photo.")))
        return
    if draft.located:
        await to_confirm(chat_id, state, ctx, person, draft)
    else:
        await reply(ctx, chat_id, person, Outgoing(location_prompt(), evidence_keyboard(
            _, ask_location=True, no_photo=False, photos_done=False)))


async def location_received(message: Message, state: FSMContext, ctx: ServiceContext,
                            person: Person | None, draft: ReportDraft) -> None:
    chat_id = message.chat.id
    if message.forward_origin is not None or message.venue is not None or message.via_bot is not None:
        await reply(ctx, chat_id, person, Outgoing(_(
            "Please share your own current location with the 📍 button. A forwarded location or a place "
            "picked from a list does not show where you are.")))
        return
    category = await category_or_restart(draft, state, ctx, chat_id, person)
    if category is None:
        return
    if category.photo_required and not draft.photos:
        await reply(ctx, chat_id, person, Outgoing(_(
            "This kind of problem needs a photo first. Please send one, then the location.")))
        return
    loc = message.location
    locale = current_locale()
    try:
        place = await asyncio.to_thread(report_choices.locate, ctx, lat=loc.latitude, lon=loc.longitude,
                                        locale=locale)
    except OutsideGrid:
        await reply(ctx, chat_id, person, Outgoing(_(
            "📍 This place ({lat:.5f}, {lon:.5f}) is outside the area OneGrid covers, so I cannot take the report "
            "there. Please share the location of the problem itself, from where it is.").format(
            lat=loc.latitude, lon=loc.longitude)))
        return
    draft.lat, draft.lon, draft.accuracy_m = loc.latitude, loc.longitude, loc.horizontal_accuracy
    draft.grid_code = place.grid_code
    got = _("📍 Location received: {place}.").format(place=html.escape(place.name))
    if not draft.editing and not draft.patrol:  # a worker on patrol files what they see: no "same problem?"
        duplicate = await asyncio.to_thread(report_choices.find_duplicate, ctx, category_code=category.code,
                                            lat=draft.lat, lon=draft.lon, person_id=person.id if person else None)
        if duplicate is not None:
            draft.duplicate_case_id = duplicate.case_id
            await state.set_state(ReportFlow.duplicate)
            await save(state, ctx, draft)
            await reply(ctx, chat_id, person, _duplicate_card(draft, duplicate, category, locale, ctx, lead=got))
            return
    await after_location(chat_id, state, ctx, person, draft, ack=got)


def _duplicate_card(draft: ReportDraft, dup: report_choices.Duplicate, category: CategoryChoice, locale: str,
                    ctx: ServiceContext, *, lead: str) -> Outgoing:
    lines = [
        lead,
        "",
        _("🔁 This may already be reported: case {number}, {category}, {distance} m from you, reported {when}, "
          "status: {status}.").format(number=dup.number, category=html.escape(category.label(locale)),
                                      distance=round(dup.distance_m), when=local_time(dup.created_at, ctx.timezone),
                                      status=status_label(dup.status, _)),
    ]
    if dup.already_following:
        lines.append(_("You already follow this case."))
    lines.append(_("Is it the same problem? Then I will add your report to it and keep you posted."))
    keyboard = inline([
        [button(_("✅ The same problem"), ReportCb(draft=draft.draft_id, act="same", arg=str(dup.case_id)))],
        [button(_("➕ A different problem"), ReportCb(draft=draft.draft_id, act="diff"))],
        [button(_("✖ Cancel"), ReportCb(draft=draft.draft_id, act="cancel"))],
    ])
    return Outgoing("\n".join(lines), keyboard)


async def location_out_of_turn(message: Message, state: FSMContext, ctx: ServiceContext,
                               person: Person | None) -> None:
    await reply(ctx, message.chat.id, person, Outgoing(_(
        "I already have the location. To change it, tap ✏️ Edit on the summary card.")))


async def same_problem(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None, bot: Bot, draft: ReportDraft) -> None:
    if not callback_data.arg.isdigit() or int(callback_data.arg) != draft.duplicate_case_id:
        await query.answer(_("This button belongs to a report that is no longer open."), show_alert=True)
        return
    photos = await fetch_photos(query, bot, draft)
    if photos is None:
        return
    card_id = query.message.message_id
    try:
        done = await asyncio.to_thread(reporting.follow_case, ctx, person_id=person.id, draft=draft,
                                       case_id=draft.duplicate_case_id, photos=photos,
                                       reply_to=ReplyTo(query.message.chat.id, card_id))
    except reporting.CaseClosedMeanwhile:
        await query.answer()
        draft.duplicate_case_id = None
        await after_location(query.message.chat.id, state, ctx, person, draft, lead=[
            Outgoing(None, edit_message_id=card_id),
            Outgoing(_("That case was closed in the meantime, so yours will be a new report."))])
        return
    except residents.ReportLimitReached as exc:
        await query.answer()
        await reply(ctx, query.message.chat.id, person, Outgoing(limit_text(_, exc, ctx)))
        return
    except (residents.ConsentRequired, PhotoRejected):
        await broken_report(query, state)
        return
    await state.clear()
    await query.answer(_("Added to case {number}.").format(number=done.number))


async def different_problem(query: CallbackQuery, callback_data: ReportCb, state: FSMContext,
                            ctx: ServiceContext, person: Person | None, draft: ReportDraft) -> None:
    await query.answer()
    draft.duplicate_case_id = None
    await after_location(query.message.chat.id, state, ctx, person, draft,
                         lead=[Outgoing(None, edit_message_id=query.message.message_id)])
