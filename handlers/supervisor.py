"""Supervisor handlers: Approve / Reject (with a reason) on proof cards, and the staff list with deactivation.

Each handler parses the update and calls one service (in a worker thread). The edits of every card of
the case, the messages to the workers and the confirmation to the supervisor are queued by the renderers
of the events the service publishes, in its transaction; questions and refusals are answered here.
"""

from __future__ import annotations

import asyncio
import html

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.worker_ui import CancelCb, StaffCb, VerifyCb, cancel_keyboard, confirm_deactivation_keyboard, staff_keyboard
from handlers.worker import NOT_A_COMMAND, HasRole, status_label
from models.lifecycle import Role
from models.tables import Person
from services import invitations, verification
from services.cases import CaseNotFound
from services.context import ServiceContext
from services.notify import send_reply

PAGE_SIZE = 10


class RejectFlow(StatesGroup):
    reason = State()


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    router = Router(name="supervisor")
    for observer in (router.message, router.callback_query):
        observer.filter(HasRole(Role.SUPERVISOR))
    router.callback_query.register(approve, VerifyCb.filter(F.action == "a"))
    router.callback_query.register(ask_reject_reason, VerifyCb.filter(F.action == "r"))
    router.callback_query.register(cancel_reject, CancelCb.filter(F.flow == "rej"))
    router.message.register(cancel_command, Command("cancel"), StateFilter(RejectFlow))
    router.message.register(reject_with_reason, RejectFlow.reason, F.text, NOT_A_COMMAND)
    router.message.register(reason_needed, RejectFlow.reason, NOT_A_COMMAND)
    router.message.register(list_workers, Command("workers"))
    router.callback_query.register(show_page, StaffCb.filter(F.action == "p"))
    router.callback_query.register(ask_deactivation, StaffCb.filter(F.action == "d"))
    router.callback_query.register(deactivate, StaffCb.filter(F.action == "y"))
    return router


def _refusal(exc: Exception) -> str:
    if isinstance(exc, verification.OwnWork):
        return _("You handled this case yourself, so you cannot verify it. Another supervisor will.")
    if isinstance(exc, verification.OutsideYourArea):
        return _("This case is outside your area.")
    if isinstance(exc, verification.CardOutdated):
        return _("This card is out of date: case {number} is now {status}.").format(
            number=exc.number, status=status_label(exc.status))
    if isinstance(exc, verification.NotASupervisor | invitations.NotAllowed):
        return _("Only an active supervisor of this area can do that.")
    if isinstance(exc, verification.ReasonRequired):
        return _("Please write the reason in a few words.")
    if isinstance(exc, invitations.AlreadyInactive):
        return _("This worker is already deactivated.")
    if isinstance(exc, CaseNotFound):
        return _("This case does not exist.")
    return _("That cannot be done now.")


# -- verification -------------------------------------------------------------------------------------


async def approve(query: CallbackQuery, callback_data: VerifyCb, ctx: ServiceContext, person: Person) -> None:
    try:
        decision = await asyncio.to_thread(verification.approve, ctx, case_id=callback_data.case_id,
                                           supervisor_id=person.id, expected_version=callback_data.version)
    except (verification.VerificationError, CaseNotFound) as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    await query.answer(_("Case {number} approved and closed.").format(number=decision.case_number))


async def ask_reject_reason(query: CallbackQuery, callback_data: VerifyCb, state: FSMContext, ctx: ServiceContext,
                            person: Person) -> None:
    await state.set_state(RejectFlow.reason)
    await state.set_data({"case_id": callback_data.case_id, "version": callback_data.version})
    await query.answer()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("What must be redone? Send the reason in one message; the worker will see it."),
                            reply_markup=cancel_keyboard(_, "rej"))


async def reject_with_reason(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    try:  # the confirmation is queued with the decision (ClosureRejected)
        await asyncio.to_thread(verification.reject, ctx, case_id=data["case_id"], supervisor_id=person.id,
                                reason=message.text, expected_version=data["version"])
    except verification.ReasonRequired as exc:
        await _reply(ctx, message, _refusal(exc), person)
        return
    except (verification.VerificationError, CaseNotFound) as exc:
        await state.clear()
        await _reply(ctx, message, _refusal(exc), person)
        return
    await state.clear()


async def reason_needed(message: Message, ctx: ServiceContext, person: Person) -> None:
    await _reply(ctx, message, _("Please write the reason as a text message, or press Cancel."), person)


async def cancel_reject(query: CallbackQuery, state: FSMContext) -> None:
    if await state.get_state() == RejectFlow.reason.state:
        await state.clear()
    await query.answer(_("Cancelled: the case still awaits your verification."))


async def cancel_command(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    await state.clear()
    await _reply(ctx, message, _("Cancelled: the case still awaits your verification."), person)


# -- staff --------------------------------------------------------------------------------------------


async def _reply(ctx: ServiceContext, message: Message, text: str, person: Person,
                 reply_markup: dict | None = None) -> None:
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=text, reply_markup=reply_markup,
                            person_id=person.id)


async def _send_page(ctx: ServiceContext, chat_id: int, person: Person, page: int) -> None:
    try:
        staff = await asyncio.to_thread(invitations.staff_in_scope, ctx, supervisor_id=person.id, page=page,
                                        page_size=PAGE_SIZE)
    except invitations.InvitationError as exc:
        await asyncio.to_thread(send_reply, ctx, chat_id=chat_id, text=_refusal(exc), person_id=person.id)
        return
    if not staff.members:
        await asyncio.to_thread(send_reply, ctx, chat_id=chat_id, person_id=person.id,
                                text=_("There are no active workers in your area."))
        return
    lines = [_("👷 Workers of your area:")]
    for member in staff.members:
        duty = _("on duty") if member.on_duty else _("off duty")
        lines.append(f"{html.escape(member.name)} · {html.escape(member.area_code)} · "
                     f"{html.escape(member.department_code or '—')} · {duty}")
    rows = [(m.person_id, m.name[:40]) for m in staff.members]
    await asyncio.to_thread(send_reply, ctx, chat_id=chat_id, person_id=person.id, text="\n".join(lines),
                            reply_markup=staff_keyboard(_, rows, page=staff.page, has_more=staff.has_more))


async def list_workers(message: Message, ctx: ServiceContext, person: Person) -> None:
    await _send_page(ctx, message.chat.id, person, 0)


async def show_page(query: CallbackQuery, callback_data: StaffCb, ctx: ServiceContext, person: Person) -> None:
    await query.answer()
    await _send_page(ctx, query.from_user.id, person, callback_data.page)


async def ask_deactivation(query: CallbackQuery, callback_data: StaffCb, ctx: ServiceContext, person: Person) -> None:
    await query.answer()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("Deactivate this worker? They get no new orders, and the orders they hold go "
                                   "back to dispatch."),
                            reply_markup=confirm_deactivation_keyboard(_, callback_data.person_id, callback_data.page))


async def deactivate(query: CallbackQuery, callback_data: StaffCb, ctx: ServiceContext, person: Person) -> None:
    try:
        result = await asyncio.to_thread(invitations.deactivate_worker, ctx, worker_id=callback_data.person_id,
                                         supervisor_id=person.id)
    except invitations.InvitationError as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return
    await query.answer()
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id,
                            text=_("{name} is deactivated. Orders sent back to dispatch: {returned}; offers "
                                   "withdrawn: {withdrawn}.").format(name=html.escape(result.name),
                                                                     returned=result.returned,
                                                                     withdrawn=result.withdrawn))
