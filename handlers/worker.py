"""Worker handlers: the invitation deep link, /duty, /tasks, and Accept / Return; the completion flow is
handlers/worker_proofs.py, and `build_router` joins both.

Each handler parses the update, calls one service (in a worker thread) and answers. What a change means
for anyone, the acting worker included, is queued by the service's events in its transaction
(bot/renderers/work*.py); the handlers answer refusals, read-only requests and callback toasts.
"""

from __future__ import annotations

import asyncio
import html

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.work_text import local_time
from bot.worker_ui import CancelCb, OfferCb, TaskCb, cancel_keyboard, tasks_list_keyboard
from handlers import worker_field, worker_proofs
from handlers.worker_common import NOT_A_COMMAND, HasRole, ReturnFlow, refusal, reply, status_label
from models.lifecycle import Role, Status
from models.tables import Person
from services import work
from services.context import ServiceContext
from services.invitations import INVITE_PREFIX, InvalidInvitation, InvitationProblem, redeem_invitation
from services.notify import send_reply

MAX_LISTED = 20

__all__ = ["NOT_A_COMMAND", "HasRole", "build_router", "status_label"]


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
    router.include_router(worker_proofs.build_router())
    router.include_router(worker_field.build_router())
    return router


# -- onboarding ---------------------------------------------------------------------------------------


async def bind_invitation(message: Message, command: CommandObject, ctx: ServiceContext,
                          person: Person | None) -> None:
    user = message.from_user
    try:
        await asyncio.to_thread(
            redeem_invitation, ctx, token=command.args or "", telegram_user_id=user.id,
            display_name=user.full_name, username=user.username, language_code=user.language_code)
    except InvalidInvitation as exc:
        texts = {
            InvitationProblem.FORGED: _("This invitation link is not valid. Ask your supervisor for a new one."),
            InvitationProblem.REUSED: _("This invitation link was already used; each link works once. "
                                        "Ask your supervisor for a new one."),
            InvitationProblem.EXPIRED: _("This invitation link has expired. Ask your supervisor for a new one."),
        }
        await reply(ctx, message, texts[exc.problem], person)
        return
    # The welcome and the new role's command menu were queued with the binding (InvitationRedeemed).
    ctx.on_notifications()


# -- duty and the list ------------------------------------------------------------------------------------


async def toggle_duty(message: Message, ctx: ServiceContext, person: Person) -> None:
    try:  # the service's event tells the worker (before the waiting orders it offers them)
        result = await asyncio.to_thread(work.set_duty, ctx, person_id=person.id, ask_about_held=True)
    except work.WorkError as exc:
        await reply(ctx, message, refusal(exc), person)
        return
    if result.question:  # off duty with held orders: hand them back or keep them? (nothing changed yet)
        await worker_field.ask_about_held(ctx, message, person, result.held, ctx.settings.off_duty_grace_min)


async def show_tasks(message: Message, ctx: ServiceContext, person: Person) -> None:
    try:
        view = await asyncio.to_thread(work.open_orders, ctx, worker_id=person.id)
    except work.WorkError as exc:
        await reply(ctx, message, refusal(exc), person)
        return
    if not view.held and not view.offered:
        text = _("You have no open work orders.")
        text += "\n" + (_("You are on duty.") if person.on_duty else _("You are off duty: send /duty to get orders."))
        await reply(ctx, message, text, person)
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
    await reply(ctx, message, "\n".join(lines), person, markup)


# -- accept and return ------------------------------------------------------------------------------------


async def accept(query: CallbackQuery, callback_data: OfferCb, ctx: ServiceContext, person: Person) -> None:
    message_id = query.message.message_id if query.message else None
    try:  # the service's event turns the offer message into the accepted order
        result = await asyncio.to_thread(work.accept_offer, ctx, offer_id=callback_data.offer_id,
                                         worker_id=person.id, message_id=message_id)
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
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
    # Nothing changes until the reason comes: the question is this handler's own answer.
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("Why are you returning this work order to the dispatcher? "
                                   "Send the reason in one message."),
                            reply_markup=cancel_keyboard(_, "ret"))


async def return_with_reason(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    try:  # the service's event updates the order message and thanks the worker
        await asyncio.to_thread(work.return_order, ctx, worker_id=person.id, reason=message.text,
                                offer_id=data.get("offer_id"), task_id=data.get("task_id"),
                                message_id=data.get("message_id"))
    except work.ReasonRequired as exc:
        await reply(ctx, message, refusal(exc), person)
        return
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person)
        return
    await state.clear()


async def reason_needed(message: Message, ctx: ServiceContext, person: Person) -> None:
    await reply(ctx, message, _("Please write the reason as a text message, or press Cancel."), person)


async def cancel_return(query: CallbackQuery, state: FSMContext) -> None:
    if await state.get_state() == ReturnFlow.reason.state:
        await state.clear()
    await query.answer(_("Cancelled: nothing was returned."))
