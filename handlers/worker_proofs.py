"""Completing a held task with proof: photos, then the location on site; /cancel and Finish later.

A photo's receipt carries the location keyboard (bot/worker_ui.py `proof_keyboard`): the worker may send
more photos, and the location, whenever it comes, submits. Accept, Complete, a photo, the location: four.

The answers to each accepted step are queued by the services' events (bot/renderers/work_proofs.py)
in the same transaction; the handlers here answer refusals and keep the conversation state.
"""

from __future__ import annotations

import asyncio

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.work_proofs import location_prompt, more_photos_or_location
from bot.resident_ui import in_every_language
from bot.worker_ui import (
    FINISH_LATER_BUTTON,
    RETAKE_PHOTOS_BUTTON,
    ProofCb,
    TaskCb,
    location_request_keyboard,
    proof_keyboard,
    remove_reply_keyboard,
)
from handlers.worker_common import (
    NOT_A_COMMAND, CompletionFlow, HasRole, ReturnFlow, fix_of, location_refusal, refusal, reply,
)
from models.lifecycle import Role
from models.tables import Person
from services import work
from services.context import ServiceContext
from services.notify import send_reply
from services.photos import MAX_BYTES, PhotoProblem


def build_router() -> Router:
    """Workers, and a supervisor who took a case over (the services let anyone complete only a task they hold)."""
    holder = Router(name="worker-holder")
    for observer in (holder.message, holder.callback_query, holder.edited_message):
        observer.filter(HasRole(Role.WORKER, Role.SUPERVISOR))
    holder.message.register(cancel_command, Command("cancel"), StateFilter(ReturnFlow, CompletionFlow))
    holder.callback_query.register(start_complete, TaskCb.filter(F.action == "c"))
    holder.message.register(proof_photo, StateFilter(CompletionFlow), F.photo | F.document)
    holder.message.register(proof_location, StateFilter(CompletionFlow), F.location)
    holder.callback_query.register(photos_done, ProofCb.filter(F.action == "d"))
    holder.callback_query.register(retake_photos, ProofCb.filter(F.action == "p"))
    holder.callback_query.register(submit_flagged, ProofCb.filter(F.action == "f"))
    holder.callback_query.register(finish_later, ProofCb.filter(F.action == "x"))
    in_proof = StateFilter(CompletionFlow)
    holder.message.register(retake_by_keyboard, in_proof, F.text.in_(in_every_language(RETAKE_PHOTOS_BUTTON)))
    holder.message.register(finish_later_by_keyboard, in_proof, F.text.in_(in_every_language(FINISH_LATER_BUTTON)))
    holder.message.register(photo_step_hint, CompletionFlow.photos, NOT_A_COMMAND)
    holder.message.register(location_step_hint, CompletionFlow.location, NOT_A_COMMAND)
    holder.edited_message.register(live_location_moved, F.location)
    return holder


def _paused() -> str:
    return _("Paused. Your photos and location are kept; press Complete on the order (or see /tasks) to continue.")


async def cancel_command(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    current = await state.get_state()
    await state.clear()
    text = _("Cancelled: nothing was returned.") if current == ReturnFlow.reason.state else _paused()
    await reply(ctx, message, text, person, remove_reply_keyboard())


async def start_complete(query: CallbackQuery, callback_data: TaskCb, state: FSMContext, ctx: ServiceContext,
                         person: Person) -> None:
    try:  # the service's event asks for the photos (or the location, with all photos kept)
        view = await asyncio.to_thread(work.start_completion, ctx, task_id=callback_data.task_id, worker_id=person.id)
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.set_data({"completion_id": view.completion_id})
    await state.set_state(CompletionFlow.location if view.photos >= view.max_photos else CompletionFlow.photos)


_PHOTO_PROBLEMS = {
    PhotoProblem.TOO_LARGE: lambda: _("This file is larger than 20 MB. Send the picture as a photo, or a smaller file."),
    PhotoProblem.NOT_AN_IMAGE: lambda: _("This is not a picture we can read. Send a photo (JPEG, PNG, WebP or HEIC)."),
    PhotoProblem.TOO_MANY_PIXELS: lambda: _("This picture has far too many pixels for a camera photo and was refused. "
                                            "Send the photo from your camera."),
    PhotoProblem.TRUNCATED: lambda: _("This picture is incomplete (the file is cut off). Send it again."),
}


async def proof_photo(message: Message, state: FSMContext, bot: Bot, ctx: ServiceContext, person: Person) -> None:
    completion_id = (await state.get_data()).get("completion_id")
    if message.photo:
        size = message.photo[-1]
        file_id, unique_id, file_size = size.file_id, size.file_unique_id, size.file_size
    else:
        document = message.document
        file_id, unique_id, file_size = document.file_id, document.file_unique_id, document.file_size
    if completion_id is None:
        await state.clear()
        await reply(ctx, message, _("Press Complete on the work order first."), person)
        return
    if file_size is not None and file_size > MAX_BYTES:
        await reply(ctx, message, _PHOTO_PROBLEMS[PhotoProblem.TOO_LARGE](), person)
        return
    try:
        data = (await bot.download(file_id)).read()
    except TelegramBadRequest:  # Telegram refuses downloads over 20 MB
        await reply(ctx, message, _PHOTO_PROBLEMS[PhotoProblem.TOO_LARGE](), person)
        return
    try:  # the service's event acknowledges the photo
        view = await asyncio.to_thread(work.add_proof_photo, ctx, completion_id=completion_id, worker_id=person.id,
                                       data=data, file_unique_id=unique_id, file_id=file_id)
    except work.ProofPhotoRefused as exc:
        await reply(ctx, message, _PHOTO_PROBLEMS[exc.problem](), person)
        return
    except work.SamePicture as exc:
        text = (_("This is the same picture as the resident's photo. Photograph the place as it is now, after "
                  "the work.") if exc.earlier == "report"
                else _("This picture was already used as proof. Take a new photo of the place as it is now."))
        await reply(ctx, message, text, person)
        return
    except work.TooManyPhotos as exc:
        await state.set_state(CompletionFlow.location)
        await reply(ctx, message, _("You already sent {max} photos, the most a proof takes.").format(max=exc.limit)
                    + "\n" + location_prompt(_), person, proof_keyboard(_))
        return
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person)
        return
    if view.photos >= view.max_photos:
        await state.set_state(CompletionFlow.location)


async def photos_done(query: CallbackQuery, callback_data: ProofCb, state: FSMContext, ctx: ServiceContext,
                      person: Person) -> None:
    try:
        view = await asyncio.to_thread(work.completion_view, ctx, completion_id=callback_data.completion_id,
                                       worker_id=person.id)
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    if not view.photos:
        await query.answer(_("Send at least one photo first."), show_alert=True)
        return
    await query.answer()
    await state.set_state(CompletionFlow.location)
    await state.set_data({"completion_id": view.completion_id})
    # Nothing changed in the store: the prompt is this handler's own answer.
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=location_prompt(_), reply_markup=location_request_keyboard(_))


async def retake_photos(query: CallbackQuery, callback_data: ProofCb, state: FSMContext, ctx: ServiceContext,
                        person: Person) -> None:
    try:  # the service's event asks for the new photos
        view = await asyncio.to_thread(work.clear_proof_photos, ctx, completion_id=callback_data.completion_id,
                                       worker_id=person.id)
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.set_state(CompletionFlow.photos)
    await state.set_data({"completion_id": view.completion_id})


async def retake_by_keyboard(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    """"Retake photos" on the reply keyboard of a photo's receipt: the proof in progress in this chat."""
    completion_id = (await state.get_data()).get("completion_id")
    if completion_id is None:
        await state.clear()
        await reply(ctx, message, _("Press Complete on the work order first."), person, remove_reply_keyboard())
        return
    try:  # the service's event asks for the new photos
        await asyncio.to_thread(work.clear_proof_photos, ctx, completion_id=completion_id, worker_id=person.id)
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person, remove_reply_keyboard())
        return
    await state.set_state(CompletionFlow.photos)



async def proof_location(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    completion_id = (await state.get_data()).get("completion_id")
    if completion_id is None:
        await state.clear()
        await reply(ctx, message, _("Press Complete on the work order first."), person)
        return
    try:  # the service's event gives the receipt, or what is wrong with a location kept for a decision
        result = await asyncio.to_thread(work.submit_location, ctx, completion_id=completion_id, worker_id=person.id,
                                         fix=fix_of(message))
    except work.PhotosMissing:
        await reply(ctx, message, _("First send at least one photo of the finished work, then your location."),
                    person)
        return
    except work.LocationRefused as exc:
        await reply(ctx, message, location_refusal(exc.judgement), person, location_request_keyboard(_))
        return
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person, remove_reply_keyboard())
        return
    if result.outcome is work.LocationOutcome.SUBMITTED:
        await state.clear()
    else:
        await state.set_state(CompletionFlow.location)




async def submit_flagged(query: CallbackQuery, callback_data: ProofCb, state: FSMContext, ctx: ServiceContext,
                         person: Person) -> None:
    try:  # the service's event gives the receipt
        await asyncio.to_thread(work.submit_flagged, ctx, completion_id=callback_data.completion_id,
                                worker_id=person.id)
    except work.LocationMissing:
        await query.answer(_("Send your location first."), show_alert=True)
        return
    except work.PhotosMissing:
        await query.answer(_("Send at least one photo first."), show_alert=True)
        return
    except work.LocationRefused as exc:
        await query.answer(location_refusal(exc.judgement), show_alert=True)
        return
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.clear()


async def finish_later(query: CallbackQuery, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    await state.clear()
    await query.answer()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_paused(), reply_markup=remove_reply_keyboard())


async def finish_later_by_keyboard(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    await state.clear()
    await reply(ctx, message, _paused(), person, remove_reply_keyboard())


async def photo_step_hint(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    """Something other than a photo while photos are asked for: after the first one, the location also does."""
    completion_id = (await state.get_data()).get("completion_id")
    if completion_id is None:
        await state.clear()
        await reply(ctx, message, _("Press Complete on the work order first."), person)
        return
    try:
        view = await asyncio.to_thread(work.completion_view, ctx, completion_id=completion_id, worker_id=person.id)
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person, remove_reply_keyboard())
        return
    if view.photos:
        await reply(ctx, message, more_photos_or_location(_), person, proof_keyboard(_))
    else:
        await reply(ctx, message, _("Send a photo of the finished work."), person)


async def location_step_hint(message: Message, ctx: ServiceContext, person: Person) -> None:
    await reply(ctx, message, location_prompt(_), person, location_request_keyboard(_))


async def live_location_moved(message: Message, ctx: ServiceContext, person: Person, state: FSMContext) -> None:
    try:  # a submission it causes is answered by the service's event
        result = await asyncio.to_thread(work.track_live_location, ctx, worker_id=person.id, fix=fix_of(message))
    except work.WorkError:
        return  # a live update is no request of the worker's; nothing to answer
    if result is not None and result.outcome is work.LocationOutcome.SUBMITTED:
        await state.clear()
