"""Worker handlers: the invitation deep link, /duty, /tasks, and Accept / Return / Complete with proofs.

Each handler parses the update, calls one service (in a worker thread) and renders the reply.
Messages to other people (the other workers of an offer, supervisors) are written by the services.
"""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.worker_ui import (
    CancelCb,
    OfferCb,
    ProofCb,
    TaskCb,
    cancel_keyboard,
    flag_keyboard,
    location_request_keyboard,
    photos_keyboard,
    remove_reply_keyboard,
    tasks_list_keyboard,
)
from models.lifecycle import Role, Status
from models.tables import Person
from services import staff_menus, work
from services.context import ServiceContext
from services.dispatch import local_time
from services.invitations import INVITE_PREFIX, InvalidInvitation, InvitationProblem, redeem_invitation
from services.notify import send_reply
from services.photos import MAX_BYTES, PhotoProblem

MAX_LISTED = 20


class ReturnFlow(StatesGroup):
    reason = State()


class CompletionFlow(StatesGroup):
    photos = State()
    location = State()


class HasRole(Filter):
    """Passes for a known person holding one of `roles` (active or not: deactivated people are told so)."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, event: TelegramObject, person: Person | None = None) -> bool:
        return person is not None and any(person.has_role(role) for role in self.roles)


NOT_A_COMMAND = ~F.text.startswith("/")


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    router = Router(name="worker")
    router.message.register(bind_invitation, CommandStart(deep_link=True, magic=F.args.startswith(INVITE_PREFIX)))

    staff = Router(name="worker-staff")
    for observer in (staff.message, staff.callback_query, staff.edited_message):
        observer.filter(HasRole(Role.WORKER))
    staff.message.register(show_tasks, Command("tasks"))
    staff.message.register(toggle_duty, Command("duty"))
    staff.callback_query.register(accept, OfferCb.filter(F.action == "a"))
    staff.callback_query.register(ask_return_reason, OfferCb.filter(F.action == "r"))
    staff.callback_query.register(ask_return_reason, TaskCb.filter(F.action == "r"))
    staff.callback_query.register(cancel_return, CancelCb.filter(F.flow == "ret"))
    staff.message.register(return_with_reason, ReturnFlow.reason, F.text, NOT_A_COMMAND)
    staff.message.register(reason_needed, ReturnFlow.reason, NOT_A_COMMAND)
    router.include_router(staff)

    # Completing with proof: workers, and a supervisor who took a case over (the services let anyone
    # complete only a task they hold).
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
    holder.message.register(photo_step_hint, CompletionFlow.photos, NOT_A_COMMAND)
    holder.message.register(location_step_hint, CompletionFlow.location, NOT_A_COMMAND)
    holder.edited_message.register(live_location_moved, F.location)
    router.include_router(holder)
    return router


async def _reply(ctx: ServiceContext, message: Message, text: str, person: Person | None,
                 reply_markup: dict | None = None) -> None:
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=text, reply_markup=reply_markup,
                            person_id=person.id if person else None)


def status_label(status: str) -> str:
    """A case status in the reader's words."""
    labels = {
        Status.REPORTED: _("reported"),
        Status.REGISTERED: _("registered"),
        Status.DISPATCHED: _("dispatched"),
        Status.IN_PROGRESS: _("in progress"),
        Status.EXTENSION_REQUESTED: _("waiting for an extension decision"),
        Status.AWAITING_VERIFICATION: _("awaiting verification"),
        Status.REWORK: _("sent back for rework"),
        Status.RETURNED: _("returned to dispatch"),
        Status.SHELVED: _("shelved"),
        Status.CLOSED: _("closed"),
        Status.CANCELLED: _("cancelled"),
        Status.MERGED: _("merged into another case"),
    }
    return labels.get(status, status)


def _refusal(exc: work.WorkError) -> str:
    """What to tell a worker whose action was refused, and what to do next."""
    if isinstance(exc, work.WorkerInactive):
        return _("Your worker account is deactivated. Ask your supervisor if this is a mistake.")
    if isinstance(exc, work.OfferUnavailable):
        if exc.why == work.OfferStatus.TAKEN:
            return _("Work order {number} was already taken by another worker.").format(number=exc.number)
        return _("Work order {number} is no longer offered to you.").format(number=exc.number)
    if isinstance(exc, work.TaskNotOpen):
        if exc.status in ("done", Status.AWAITING_VERIFICATION.value, "submitted"):
            return _("Case {number} was already submitted and awaits verification.").format(number=exc.number)
        return _("Case {number} cannot be completed now (it is {status}).").format(
            number=exc.number, status=status_label(exc.status))
    if isinstance(exc, work.ReturnNotAllowed):
        return _("Case {number} cannot be returned now; ask your supervisor to reassign it.").format(number=exc.number)
    if isinstance(exc, work.NotYourOrder):
        return _("This work order is not yours.")
    if isinstance(exc, work.ReasonRequired):
        return _("Please write the reason in a few words.")
    return _("That cannot be done now.")


# -- onboarding ---------------------------------------------------------------------------------------


async def bind_invitation(message: Message, command: CommandObject, ctx: ServiceContext,
                          person: Person | None) -> None:
    user = message.from_user
    try:
        binding = await asyncio.to_thread(
            redeem_invitation, ctx, token=command.args or "", telegram_user_id=user.id,
            display_name=user.full_name, username=user.username, language_code=user.language_code)
    except InvalidInvitation as exc:
        texts = {
            InvitationProblem.FORGED: _("This invitation link is not valid. Ask your supervisor for a new one."),
            InvitationProblem.REUSED: _("This invitation link was already used; each link works once. "
                                        "Ask your supervisor for a new one."),
            InvitationProblem.EXPIRED: _("This invitation link has expired. Ask your supervisor for a new one."),
        }
        await _reply(ctx, message, texts[exc.problem], person)
        return
    name, area = html.escape(user.full_name), html.escape(binding.area_name)
    if binding.role is Role.WORKER:
        text = _("Welcome, {name}! You are now a grid worker of {area} ({department}).").format(
            name=name, area=area, department=html.escape(binding.department_name or "—"))
        text += "\n" + _("Send /duty to go on duty and receive work orders; /tasks lists your orders.")
    else:
        text = _("Welcome, {name}! You are now a supervisor of {area}.").format(name=name, area=area)
        text += "\n" + _("You will receive proof cards to verify; /workers lists the workers of your area.")
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=text, person_id=binding.person_id)
    # After the welcome (one chat's messages go in order): the command menu of their new role.
    await asyncio.to_thread(staff_menus.queue_menu_for, ctx, person_id=binding.person_id)


# -- duty and the list ------------------------------------------------------------------------------------


async def toggle_duty(message: Message, ctx: ServiceContext, person: Person) -> None:
    try:  # the service tells the worker (before the waiting orders it offers them)
        await asyncio.to_thread(work.set_duty, ctx, person_id=person.id)
    except work.WorkError as exc:
        await _reply(ctx, message, _refusal(exc), person)


async def show_tasks(message: Message, ctx: ServiceContext, person: Person) -> None:
    try:
        view = await asyncio.to_thread(work.open_orders, ctx, worker_id=person.id)
    except work.WorkError as exc:
        await _reply(ctx, message, _refusal(exc), person)
        return
    if not view.held and not view.offered:
        text = _("You have no open work orders.")
        text += "\n" + (_("You are on duty.") if person.on_duty else _("You are off duty: send /duty to get orders."))
        await _reply(ctx, message, text, person)
        return
    lines = [_("📋 Your work orders:")] if view.held else []
    for order in view.held[:MAX_LISTED]:
        due = local_time(order.handle_due_at, ctx.timezone)
        line = _("{number} · {category} · handle by {due}").format(
            number=order.case_number, category=html.escape(order.category_name), due=due)
        if order.overdue:
            line = _("⚠️ OVERDUE") + " " + line
        if order.task_status == "done":
            line += " · " + _("awaiting verification")
        elif order.case_status == Status.REWORK:
            line += " · " + _("rework")
        lines.append(line)
    if len(view.held) > MAX_LISTED:
        lines.append(_("…and {count} more.").format(count=len(view.held) - MAX_LISTED))
    if view.offered:
        lines.append("")
        lines.append(_("Offered to you, not answered yet (see the order messages):"))
        for order in view.offered[:MAX_LISTED]:
            lines.append(_("{number} · {category} · handle by {due}").format(
                number=order.case_number, category=html.escape(order.category_name),
                due=local_time(order.handle_due_at, ctx.timezone)))
    actionable = [(o.task_id, o.case_number, o.case_status != Status.REWORK)
                  for o in view.held[:MAX_LISTED] if o.task_status == "accepted"]
    markup = tasks_list_keyboard(_, actionable) if actionable else None
    await _reply(ctx, message, "\n".join(lines), person, markup)


# -- accept and return ------------------------------------------------------------------------------------


async def accept(query: CallbackQuery, callback_data: OfferCb, ctx: ServiceContext, person: Person) -> None:
    message_id = query.message.message_id if query.message else None
    try:
        result = await asyncio.to_thread(work.accept_offer, ctx, offer_id=callback_data.offer_id,
                                         worker_id=person.id, message_id=message_id)
    except work.WorkError as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    if result.outcome is work.AcceptOutcome.ACCEPTED:
        await query.answer(_("Accepted: case {number} is yours.").format(number=result.case_number))
    elif result.outcome is work.AcceptOutcome.ALREADY_YOURS:
        await query.answer(_("You have already accepted case {number}.").format(number=result.case_number))
    else:
        await query.answer(_("Case {number} is no longer open.").format(number=result.case_number), show_alert=True)


async def ask_return_reason(query: CallbackQuery, callback_data: OfferCb | TaskCb, state: FSMContext,
                            ctx: ServiceContext, person: Person) -> None:
    target = ({"offer_id": callback_data.offer_id} if isinstance(callback_data, OfferCb)
              else {"task_id": callback_data.task_id})
    await state.set_state(ReturnFlow.reason)
    await state.set_data({**target, "message_id": query.message.message_id if query.message else None})
    await query.answer()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("Why are you returning this work order to the dispatcher? "
                                   "Send the reason in one message."),
                            reply_markup=cancel_keyboard(_, "ret"))


async def return_with_reason(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    try:
        result = await asyncio.to_thread(work.return_order, ctx, worker_id=person.id, reason=message.text,
                                         offer_id=data.get("offer_id"), task_id=data.get("task_id"),
                                         message_id=data.get("message_id"))
    except work.ReasonRequired as exc:
        await _reply(ctx, message, _refusal(exc), person)
        return
    except work.WorkError as exc:
        await state.clear()
        await _reply(ctx, message, _refusal(exc), person)
        return
    await state.clear()
    await _reply(ctx, message, _("Returned: work order {number} goes back to the dispatcher. Thank you for "
                                 "saying why.").format(number=result.case_number), person)


async def reason_needed(message: Message, ctx: ServiceContext, person: Person) -> None:
    await _reply(ctx, message, _("Please write the reason as a text message, or press Cancel."), person)


async def cancel_return(query: CallbackQuery, state: FSMContext) -> None:
    if await state.get_state() == ReturnFlow.reason.state:
        await state.clear()
    await query.answer(_("Cancelled: nothing was returned."))


async def cancel_command(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    current = await state.get_state()
    await state.clear()
    if current == ReturnFlow.reason.state:
        text = _("Cancelled: nothing was returned.")
    else:
        text = _("Paused. Your photos and location are kept; press Complete on the order (or see /tasks) "
                 "to continue.")
    await _reply(ctx, message, text, person, remove_reply_keyboard())


# -- completion --------------------------------------------------------------------------------------------


def _location_prompt() -> str:
    return _("Now share your location on site: tap 📎 → Location → Share My Live Location (preferred), "
             "or press the button below to send your current location.")


async def start_complete(query: CallbackQuery, callback_data: TaskCb, state: FSMContext, ctx: ServiceContext,
                         person: Person) -> None:
    try:
        view = await asyncio.to_thread(work.start_completion, ctx, task_id=callback_data.task_id, worker_id=person.id)
    except work.WorkError as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.set_data({"completion_id": view.completion_id})
    text = _("Case {number}: send 1 to {max} photos of the finished work.").format(
        number=view.case_number, max=view.max_photos)
    if view.photos >= view.max_photos:
        await state.set_state(CompletionFlow.location)
        text = _("Case {number}: your {count} photos are kept.").format(number=view.case_number, count=view.photos)
        await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                                text=text + "\n" + _location_prompt(), reply_markup=location_request_keyboard(_))
        return
    await state.set_state(CompletionFlow.photos)
    if view.photos:
        text += "\n" + _("Photos kept from before: {count}.").format(count=view.photos)
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id, text=text,
                            reply_markup=photos_keyboard(_, view.completion_id, have_photos=view.photos > 0))


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
        await _reply(ctx, message, _("Press Complete on the work order first."), person)
        return
    if file_size is not None and file_size > MAX_BYTES:
        await _reply(ctx, message, _PHOTO_PROBLEMS[PhotoProblem.TOO_LARGE](), person)
        return
    try:
        data = (await bot.download(file_id)).read()
    except TelegramBadRequest:  # Telegram refuses downloads over 20 MB
        await _reply(ctx, message, _PHOTO_PROBLEMS[PhotoProblem.TOO_LARGE](), person)
        return
    try:
        view = await asyncio.to_thread(work.add_proof_photo, ctx, completion_id=completion_id, worker_id=person.id,
                                       data=data, file_unique_id=unique_id, file_id=file_id)
    except work.ProofPhotoRefused as exc:
        await _reply(ctx, message, _PHOTO_PROBLEMS[exc.problem](), person)
        return
    except work.SamePicture as exc:
        text = (_("This is the same picture as the resident's photo. Photograph the place as it is now, after "
                  "the work.") if exc.earlier == "report"
                else _("This picture was already used as proof. Take a new photo of the place as it is now."))
        await _reply(ctx, message, text, person)
        return
    except work.TooManyPhotos as exc:
        await state.set_state(CompletionFlow.location)
        await _reply(ctx, message, _("You already sent {max} photos, the most a proof takes.").format(max=exc.limit)
                     + "\n" + _location_prompt(), person, location_request_keyboard(_))
        return
    except work.WorkError as exc:
        await state.clear()
        await _reply(ctx, message, _refusal(exc), person)
        return
    received = _("Photo {count} of {max} received.").format(count=view.photos, max=view.max_photos)
    if view.photos >= view.max_photos:
        await state.set_state(CompletionFlow.location)
        await _reply(ctx, message, received + "\n" + _location_prompt(), person, location_request_keyboard(_))
        return
    await _reply(ctx, message, received + " " + _("Send another, or press Done with photos."), person,
                 photos_keyboard(_, view.completion_id, have_photos=True))


async def photos_done(query: CallbackQuery, callback_data: ProofCb, state: FSMContext, ctx: ServiceContext,
                      person: Person) -> None:
    try:
        view = await asyncio.to_thread(work.completion_view, ctx, completion_id=callback_data.completion_id,
                                       worker_id=person.id)
    except work.WorkError as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    if not view.photos:
        await query.answer(_("Send at least one photo first."), show_alert=True)
        return
    await query.answer()
    await state.set_state(CompletionFlow.location)
    await state.set_data({"completion_id": view.completion_id})
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_location_prompt(), reply_markup=location_request_keyboard(_))


async def retake_photos(query: CallbackQuery, callback_data: ProofCb, state: FSMContext, ctx: ServiceContext,
                        person: Person) -> None:
    try:
        view = await asyncio.to_thread(work.clear_proof_photos, ctx, completion_id=callback_data.completion_id,
                                       worker_id=person.id)
    except work.WorkError as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.set_state(CompletionFlow.photos)
    await state.set_data({"completion_id": view.completion_id})
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("Photos removed. Send 1 to {max} new photos.").format(max=view.max_photos),
                            reply_markup=photos_keyboard(_, view.completion_id, have_photos=False))


def _fix_of(message: Message) -> work.LocationFix:
    location = message.location
    sent_at = message.edit_date or message.date
    if isinstance(sent_at, int):
        sent_at = datetime.fromtimestamp(sent_at, UTC)
    elif sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    return work.LocationFix(
        lat=location.latitude, lon=location.longitude, sent_at=sent_at, accuracy_m=location.horizontal_accuracy,
        live_period=location.live_period, forwarded=message.forward_origin is not None,
        venue=message.venue is not None, via_bot=message.via_bot is not None, message_id=message.message_id)


def _submitted_text(result: work.LocationResult, *, flagged: bool = False) -> str:
    kind = _("live location") if result.live else _("static location")
    text = _("✅ Proof submitted for case {number}: {distance} m from the case point ({kind}).").format(
        number=result.case_number, distance=round(result.judgement.distance_m), kind=kind)
    if flagged:
        text += "\n" + _("It is flagged: the supervisor will judge the location.")
    if result.waiting_for:
        text += "\n" + _("Your part is done. The case moves on when these departments finish theirs: "
                         "{departments}.").format(departments=html.escape(", ".join(result.waiting_for)))
    else:
        text += "\n" + _("A supervisor will verify it.")
    if not result.live:
        text += "\n" + _("Next time, please share a live location: it shows how long you were on site.")
    return text


async def proof_location(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    completion_id = (await state.get_data()).get("completion_id")
    if completion_id is None:
        await state.clear()
        await _reply(ctx, message, _("Press Complete on the work order first."), person)
        return
    try:
        result = await asyncio.to_thread(work.submit_location, ctx, completion_id=completion_id, worker_id=person.id,
                                         fix=_fix_of(message))
    except work.PhotosMissing:
        await _reply(ctx, message, _("First send at least one photo of the finished work, then your location."),
                     person)
        return
    except work.LocationRefused as exc:
        await _reply(ctx, message, _location_refusal(exc.judgement), person, location_request_keyboard(_))
        return
    except work.WorkError as exc:
        await state.clear()
        await _reply(ctx, message, _refusal(exc), person, remove_reply_keyboard())
        return
    if result.outcome is work.LocationOutcome.SUBMITTED:
        await state.clear()
        await _reply(ctx, message, _submitted_text(result), person, remove_reply_keyboard())
        return
    await state.set_state(CompletionFlow.location)
    await _reply(ctx, message, _too_far_text(result.judgement, ctx), person, flag_keyboard(_, completion_id))


def _location_refusal(judgement: work.LocationJudgement) -> str:
    problems = judgement.problems
    if work.LocationProblem.FORWARDED in problems:
        return _("This location was forwarded. Send your own location from the site, not a forwarded one.")
    if work.LocationProblem.VENUE in problems:
        return _("This is a place picked on the map, not your position. Share your own location "
                 "(📎 → Location).")
    if work.LocationProblem.VIA_BOT in problems:
        return _("This location came through another bot. Share your own location (📎 → Location).")
    minutes = max(1, round(judgement.age_s / 60))
    return _("This location was sent {minutes} min ago, which is too old to prove you are on site. "
             "Send your location again now.").format(minutes=minutes)


def _too_far_text(judgement: work.LocationJudgement, ctx: ServiceContext) -> str:
    lines = []
    if work.LocationProblem.LOW_ACCURACY in judgement.problems:
        lines.append(_("📍 Your location is only accurate to ±{accuracy} m; at most ±{max} m is accepted. "
                       "Wait for a better GPS fix outdoors and send it again.").format(
            accuracy=round(judgement.accuracy_m), max=round(ctx.settings.proof_location_max_accuracy_m)))
    if work.LocationProblem.TOO_FAR in judgement.problems:
        lines.append(_("📍 You are {distance} m from the case point; at most {allowed} m is accepted here. "
                       "Go to the place and send your location again.").format(
            distance=round(judgement.distance_m), allowed=round(judgement.allowed_m)))
    lines.append(_("Or, if you are sure you are in the right place, submit it flagged for the supervisor to judge."))
    return "\n".join(lines)


async def submit_flagged(query: CallbackQuery, callback_data: ProofCb, state: FSMContext, ctx: ServiceContext,
                         person: Person) -> None:
    try:
        result = await asyncio.to_thread(work.submit_flagged, ctx, completion_id=callback_data.completion_id,
                                         worker_id=person.id)
    except work.LocationMissing:
        await query.answer(_("Send your location first."), show_alert=True)
        return
    except work.PhotosMissing:
        await query.answer(_("Send at least one photo first."), show_alert=True)
        return
    except work.WorkError as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.clear()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_submitted_text(result, flagged=True), reply_markup=remove_reply_keyboard())


async def finish_later(query: CallbackQuery, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    await state.clear()
    await query.answer()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("Paused. Your photos and location are kept; press Complete on the order "
                                   "(or see /tasks) to continue."), reply_markup=remove_reply_keyboard())


async def photo_step_hint(message: Message, ctx: ServiceContext, person: Person) -> None:
    await _reply(ctx, message, _("Send a photo of the finished work, or press Done with photos."), person)


async def location_step_hint(message: Message, ctx: ServiceContext, person: Person) -> None:
    await _reply(ctx, message, _location_prompt(), person, location_request_keyboard(_))


async def live_location_moved(message: Message, ctx: ServiceContext, person: Person, state: FSMContext) -> None:
    try:
        result = await asyncio.to_thread(work.track_live_location, ctx, worker_id=person.id, fix=_fix_of(message))
    except work.WorkError:
        return  # a live update is no request of the worker's; nothing to answer
    if result is not None and result.outcome is work.LocationOutcome.SUBMITTED:
        await state.clear()
        await _reply(ctx, message, _submitted_text(result), person, remove_reply_keyboard())
