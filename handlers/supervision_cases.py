"""A supervisor cancels (注销) or merges a case from its card: /case NUMBER, or the buttons under a ping.

🚫 Cancel case offers a few quick reasons and "another reason" (typed); 🔗 Merge duplicate offers the open
cases of the same grid and "type the number". Each change is one service call (services/case_ending.py);
its confirmation, the followers' and the workers' messages are queued by the renderers of the events it
publishes. Questions and refusals are answered here; every service checks the supervisor's area first.
"""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.case_actions import supervisor_case_card
from bot.resident_ui import current_locale
from bot.supervision_ui import CANCEL_REASONS, CaseEndCb, cancel_reasons_keyboard, merge_targets_keyboard
from handlers.supervision_common import REFUSALS, refusal, say
from handlers.worker_common import NOT_A_COMMAND, HasRole
from models.lifecycle import Action, Role
from models.tables import Person
from services import case_ending
from services.work_common import ReasonRequired
from services.context import ServiceContext


class CancelFlow(StatesGroup):
    reason = State()


class MergeFlow(StatesGroup):
    number = State()


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    router = Router(name="supervision-cases")
    for observer in (router.message, router.callback_query):
        observer.filter(HasRole(Role.SUPERVISOR))
    router.message.register(show_case, Command("case"))
    router.callback_query.register(ask_reason, CaseEndCb.filter(F.action == "c"))
    router.callback_query.register(cancel_quick, CaseEndCb.filter(F.action == "r"))
    router.callback_query.register(ask_typed_reason, CaseEndCb.filter(F.action == "o"))
    router.callback_query.register(ask_target, CaseEndCb.filter(F.action == "m"))
    router.callback_query.register(merge_into, CaseEndCb.filter(F.action == "i"))
    router.callback_query.register(ask_number, CaseEndCb.filter(F.action == "n"))
    router.message.register(cancel_typed, CancelFlow.reason, F.text, NOT_A_COMMAND)
    router.message.register(merge_typed, MergeFlow.number, F.text, NOT_A_COMMAND)
    return router


def _refusal(exc: Exception) -> str:
    if isinstance(exc, case_ending.MergeTargetInvalid):
        if exc.why == "same":
            return _("A case cannot be merged into itself.")
        if exc.why == "not_open":
            return _("Case {number} is not open, so nothing can be merged into it.").format(number=exc.number)
        return _("There is no open case with that number in your area.")
    if isinstance(exc, case_ending.EndingError):
        return _("That cannot be done now.")
    return refusal(exc)


_ALL_REFUSALS = (*REFUSALS, case_ending.EndingError)


async def _call(query: CallbackQuery, fn, /, **kw):  # noqa: ANN001, ANN202
    """Run one service; on a refusal answer the button with the reason and return None."""
    try:
        return await asyncio.to_thread(fn, **kw)
    except _ALL_REFUSALS as exc:
        await query.answer(_refusal(exc), show_alert=True)
        return None


async def show_case(message: Message, command: CommandObject, ctx: ServiceContext, person: Person) -> None:
    number = (command.args or "").strip()
    if not number:
        await say(ctx, message.chat.id, person, _("Write /case and the case number, e.g. /case SH-20261121-000001."))
        return
    case_id = await asyncio.to_thread(case_ending.find_case_id, ctx, number=number)
    if case_id is None:
        await say(ctx, message.chat.id, person, _("This case does not exist."))
        return
    try:
        text, keyboard = await asyncio.to_thread(supervisor_case_card, ctx, supervisor_id=person.id, case_id=case_id,
                                                 locale=current_locale())
    except _ALL_REFUSALS as exc:
        await say(ctx, message.chat.id, person, _refusal(exc))
        return
    await say(ctx, message.chat.id, person, text, keyboard)


# -- cancel ------------------------------------------------------------------------------------------------


async def ask_reason(query: CallbackQuery, callback_data: CaseEndCb, ctx: ServiceContext, person: Person) -> None:
    number = await _call(query, case_ending.case_number_for, ctx=ctx, case_id=callback_data.case_id,
                         supervisor_id=person.id, action=Action.CANCEL)
    if number is None:
        return
    await query.answer()
    await say(ctx, query.from_user.id, person,
              _("Why is case {number} cancelled? Its reporter and followers are told the reason.").format(
                  number=number), cancel_reasons_keyboard(_, callback_data.case_id))


async def cancel_quick(query: CallbackQuery, callback_data: CaseEndCb, ctx: ServiceContext, person: Person) -> None:
    if not 0 <= callback_data.arg < len(CANCEL_REASONS):
        await query.answer(_("That cannot be done now."), show_alert=True)
        return
    number = await _call(query, case_ending.cancel_case, ctx=ctx, case_id=callback_data.case_id,
                         supervisor_id=person.id, reason=_(CANCEL_REASONS[callback_data.arg]))
    if number is not None:
        await query.answer(_("Case {number} is cancelled.").format(number=number))


async def ask_typed_reason(query: CallbackQuery, callback_data: CaseEndCb, state: FSMContext, ctx: ServiceContext,
                           person: Person) -> None:
    number = await _call(query, case_ending.case_number_for, ctx=ctx, case_id=callback_data.case_id,
                         supervisor_id=person.id, action=Action.CANCEL)
    if number is None:
        return
    await query.answer()
    await state.set_state(CancelFlow.reason)
    await state.set_data({"case_id": callback_data.case_id})
    await say(ctx, query.from_user.id, person,
              _("Send the reason for cancelling case {number} in one message.").format(number=number))


async def cancel_typed(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    await state.clear()
    try:  # the confirmation is queued with the change (CaseCancelled)
        await asyncio.to_thread(case_ending.cancel_case, ctx, case_id=data["case_id"], supervisor_id=person.id,
                                reason=message.text)
    except ReasonRequired:
        await say(ctx, message.chat.id, person, _("Please write the reason in a few words."))
    except _ALL_REFUSALS as exc:
        await say(ctx, message.chat.id, person, _refusal(exc))


# -- merge -------------------------------------------------------------------------------------------------


async def ask_target(query: CallbackQuery, callback_data: CaseEndCb, ctx: ServiceContext, person: Person) -> None:
    number = await _call(query, case_ending.case_number_for, ctx=ctx, case_id=callback_data.case_id,
                         supervisor_id=person.id, action=Action.MERGE)
    if number is None:
        return
    targets = await _call(query, case_ending.merge_candidates, ctx=ctx, case_id=callback_data.case_id,
                          supervisor_id=person.id, locale=current_locale())
    if targets is None:
        return
    await query.answer()
    await say(ctx, query.from_user.id, person,
              _("Merge case {number} into which open case? Its reporter and followers will follow that case, "
                "and this one closes as merged.").format(number=number),
              merge_targets_keyboard(_, callback_data.case_id, targets))


async def merge_into(query: CallbackQuery, callback_data: CaseEndCb, ctx: ServiceContext, person: Person) -> None:
    numbers = await _call(query, case_ending.merge_case, ctx=ctx, case_id=callback_data.case_id,
                          supervisor_id=person.id, into_case_id=callback_data.arg)
    if numbers is not None:
        await query.answer(_("Case {number} is merged into {into}.").format(number=numbers[0], into=numbers[1]))


async def ask_number(query: CallbackQuery, callback_data: CaseEndCb, state: FSMContext, ctx: ServiceContext,
                     person: Person) -> None:
    number = await _call(query, case_ending.case_number_for, ctx=ctx, case_id=callback_data.case_id,
                         supervisor_id=person.id, action=Action.MERGE)
    if number is None:
        return
    await query.answer()
    await state.set_state(MergeFlow.number)
    await state.set_data({"case_id": callback_data.case_id})
    await say(ctx, query.from_user.id, person,
              _("Send the number of the open case that {number} duplicates, e.g. SH-20261121-000001.").format(
                  number=number))


async def merge_typed(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    await state.clear()
    into = await asyncio.to_thread(case_ending.find_case_id, ctx, number=message.text)
    try:  # the confirmation is queued with the change (CaseMerged)
        await asyncio.to_thread(case_ending.merge_case, ctx, case_id=data["case_id"], supervisor_id=person.id,
                                into_case_id=into)
    except _ALL_REFUSALS as exc:
        await say(ctx, message.chat.id, person, _refusal(exc))


__all__ = ["build_router"]
