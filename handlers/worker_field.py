"""Worker handlers of field work beside the order: progress notes on a held task, and the off-duty handover.

Each parses the update, calls one service and answers; the service's events confirm (bot/renderers/field.py,
bot/renderers/work_offers.py `duty_changed`). The note buttons and the handover question are the handlers'
own replies: nothing is written until the worker chooses.
"""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.field_ui import HandoverCb, ProgressCb, handover_keyboard, progress_keyboard
from bot.worker_ui import CancelCb, cancel_keyboard
from handlers.worker_common import NOT_A_COMMAND, HasRole, refusal, reply
from models.field import ProgressKind
from models.lifecycle import Role
from models.tables import Person
from services import work
from services.context import ServiceContext
from services.notify import send_reply
from services.progress import NoteRequired, post_progress

QUICK = {"a": ProgressKind.ARRIVED, "w": ProgressKind.WAITING_MATERIALS, "d": ProgressKind.NEEDS_DEPARTMENT}


class ProgressFlow(StatesGroup):
    text = State()


def build_router() -> Router:
    router = Router(name="worker-field")
    for observer in (router.message, router.callback_query):  # a supervisor who took a case over holds it too
        observer.filter(HasRole(Role.WORKER, Role.SUPERVISOR))
    router.callback_query.register(show_note_buttons, ProgressCb.filter(F.action == "m"))
    router.callback_query.register(quick_note, ProgressCb.filter(F.action.in_(set(QUICK))))
    router.callback_query.register(ask_note_text, ProgressCb.filter(F.action == "t"))
    router.callback_query.register(cancel_note, CancelCb.filter(F.flow == "pn"))
    router.message.register(note_text, ProgressFlow.text, F.text, NOT_A_COMMAND)
    router.message.register(note_text_needed, ProgressFlow.text, NOT_A_COMMAND)
    router.callback_query.register(handover_choice, HandoverCb.filter())
    return router


# -- progress notes --------------------------------------------------------------------------------------------


async def _say(ctx: ServiceContext, query: CallbackQuery, person: Person, text: str,
               markup: dict | None = None) -> None:
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id, text=text,
                            reply_markup=markup)


async def show_note_buttons(query: CallbackQuery, callback_data: ProgressCb, ctx: ServiceContext,
                            person: Person) -> None:
    await query.answer()
    await _say(ctx, query, person, _("How is it going? Choose a note, or write one."),
               progress_keyboard(_, callback_data.task_id))


async def quick_note(query: CallbackQuery, callback_data: ProgressCb, ctx: ServiceContext, person: Person) -> None:
    try:  # the service's event confirms (and tells the supervisor when another department is needed)
        await asyncio.to_thread(post_progress, ctx, worker_id=person.id, task_id=callback_data.task_id,
                                kind=QUICK[callback_data.action])
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()


async def ask_note_text(query: CallbackQuery, callback_data: ProgressCb, state: FSMContext, ctx: ServiceContext,
                        person: Person) -> None:
    await state.set_state(ProgressFlow.text)
    await state.set_data({"task_id": callback_data.task_id})
    await query.answer()
    await _say(ctx, query, person, _("Write your progress note in one message."), cancel_keyboard(_, "pn"))


async def note_text(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    try:
        await asyncio.to_thread(post_progress, ctx, worker_id=person.id, task_id=int(data.get("task_id", 0)),
                                kind=ProgressKind.TEXT, text=message.text)
    except NoteRequired:
        await reply(ctx, message, _("Please write the note in a few words, or press Cancel."), person)
        return
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person)
        return
    await state.clear()


async def note_text_needed(message: Message, ctx: ServiceContext, person: Person) -> None:
    await reply(ctx, message, _("Please write the note as a text message, or press Cancel."), person)


async def cancel_note(query: CallbackQuery, state: FSMContext) -> None:
    if await state.get_state() == ProgressFlow.text.state:
        await state.clear()
    await query.answer(_("Cancelled: no note was posted."))


# -- off duty with held orders ----------------------------------------------------------------------------------


async def ask_about_held(ctx: ServiceContext, message: Message, person: Person, held: int, grace: int) -> None:
    """The question /duty asks a worker going off duty with held orders (nothing changed yet)."""
    text = _("You hold {count} work order(s). Hand them back to the dispatcher now, or keep them? "
             "Kept orders go back to the dispatcher if you are not on duty again within {minutes} min.").format(
        count=held, minutes=grace)
    await reply(ctx, message, text, person, handover_keyboard(_))


async def handover_choice(query: CallbackQuery, callback_data: HandoverCb, ctx: ServiceContext,
                          person: Person) -> None:
    try:  # DutyChanged confirms, saying what became of the held orders
        await asyncio.to_thread(work.set_duty, ctx, person_id=person.id, on_duty=False,
                                hand_back=callback_data.choice == "b")
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()
