"""回访 handlers: "is it fixed?", the reopening note, the 1–5 rating and the optional comment.

Each handler calls one service of services/feedback.py with where to answer (`ReplyTo`); the reply is
the channel's rendering of the event the service publishes (bot/renderers/resident_feedback.py), queued
in the same transaction. Only refusals (nothing written) are answered here.
"""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing, send
from bot.resident_ui import FeedbackCb, main_keyboard
from models.events.resident import ReplyTo
from models.tables import Person
from services import feedback
from services.cases import StaleCase
from services.context import ServiceContext
from services.report_draft import DRAFT_STATE_PREFIX


class FeedbackFlow(StatesGroup):
    reopen_note = State()  # "not fixed": what is still wrong (the reopening reason)
    comment = State()  # an optional comment after the rating


def register_buttons(router: Router) -> None:
    """The 回访 buttons, answered in any conversation state."""
    router.callback_query.register(answer_fixed, FeedbackCb.filter(F.act.in_({"y", "n"})))
    router.callback_query.register(rate, FeedbackCb.filter(F.act == "r"))
    router.callback_query.register(skip_comment, FeedbackCb.filter(F.act == "skip"))


def register_follow_ups(router: Router) -> None:
    """Texts that answer a 回访 step (after the report flow has had its turn)."""
    router.message.register(reopen_note, FeedbackFlow.reopen_note, F.text, ~F.text.startswith("/"))
    router.message.register(comment, FeedbackFlow.comment, F.text, ~F.text.startswith("/"))


def _reporting(raw_state: str | None) -> bool:
    return bool(raw_state and raw_state.startswith(DRAFT_STATE_PREFIX))


def _not_understood(ctx: ServiceContext, message: Message, person: Person | None):  # noqa: ANN202
    return asyncio.to_thread(send, ctx, chat_id=message.chat.id, person_id=person.id if person else None, messages=[
        Outgoing(_("I did not understand that. Use the buttons below, or /help for what I can do."),
                 main_keyboard(_))])


async def answer_fixed(query: CallbackQuery, callback_data: FeedbackCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None) -> None:
    if person is None:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    fixed = callback_data.act == "y"
    message_id = query.message.message_id
    if not fixed and _reporting(await state.get_state()):
        await query.answer(_("Please finish or cancel the report in progress first, then tap again."),
                           show_alert=True)
        return
    try:
        view = await asyncio.to_thread(feedback.answer_fixed, ctx, feedback_id=callback_data.fid,
                                       person_id=person.id, fixed=fixed,
                                       reply_to=ReplyTo(query.message.chat.id, message_id))
    except feedback.FeedbackNotFound:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    except feedback.AlreadyAnswered:
        await query.answer(_("You have already answered this question. Thank you!"), show_alert=True)
        return
    await query.answer()
    if not fixed and view.can_reopen:
        await state.set_state(FeedbackFlow.reopen_note)
        await state.set_data({"feedback_id": view.feedback_id, "message_id": message_id})


async def reopen_note(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    data = await state.get_data()
    feedback_id = data.get("feedback_id")
    note = (message.text or "").strip()
    chat_id = message.chat.id
    if person is None or not feedback_id:
        await state.clear()
        return await _not_understood(ctx, message, person)
    if not note:
        await asyncio.to_thread(send, ctx, chat_id=chat_id, person_id=person.id, messages=[
            Outgoing(_("Please write a few words about what is still wrong."))])
        return
    try:
        await asyncio.to_thread(feedback.reopen, ctx, feedback_id=feedback_id, person_id=person.id, note=note,
                                reply_to=ReplyTo(chat_id))
    except feedback.ReopenRefused as exc:
        await state.clear()
        if exc.blocker is feedback.ReopenBlocker.NOT_CLOSED:
            text = _("Thank you. The case has already been reopened for rework.")
        else:
            text = _("Sorry, the case was closed more than {days} days ago and cannot be reopened; "
                     "please report the problem again with /report.").format(days=exc.days)
        await asyncio.to_thread(send, ctx, chat_id=chat_id, person_id=person.id,
                                messages=[Outgoing(text, main_keyboard(_))])
        return
    except (feedback.FeedbackNotFound, feedback.AlreadyAnswered):
        await state.clear()
        await asyncio.to_thread(send, ctx, chat_id=chat_id, person_id=person.id, messages=[
            Outgoing(_("You have already answered this question. Thank you!"), main_keyboard(_))])
        return
    except StaleCase:  # someone changed the case at the same moment; nothing was written
        await asyncio.to_thread(send, ctx, chat_id=chat_id, person_id=person.id, messages=[
            Outgoing(_("The case changed just now; please send your note again."))])
        return
    await state.clear()


async def rate(query: CallbackQuery, callback_data: FeedbackCb, state: FSMContext, ctx: ServiceContext,
               person: Person | None) -> None:
    if person is None or not 1 <= callback_data.rating <= 5:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    message_id = query.message.message_id
    ask_comment = not _reporting(await state.get_state())  # never overwrite a report in progress
    try:
        view = await asyncio.to_thread(feedback.rate, ctx, feedback_id=callback_data.fid, person_id=person.id,
                                       rating=callback_data.rating, comment_invited=ask_comment,
                                       reply_to=ReplyTo(query.message.chat.id, message_id))
    except feedback.FeedbackNotFound:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    await query.answer()
    if ask_comment:
        await state.set_state(FeedbackFlow.comment)
        await state.set_data({"feedback_id": view.feedback_id, "message_id": message_id})


async def comment(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    data = await state.get_data()
    await state.clear()
    if person is None or not data.get("feedback_id"):
        return await _not_understood(ctx, message, person)
    try:
        await asyncio.to_thread(feedback.add_comment, ctx, feedback_id=data["feedback_id"], person_id=person.id,
                                comment=message.text or "",
                                reply_to=ReplyTo(message.chat.id, data.get("message_id")))
    except feedback.FeedbackNotFound:
        await _not_understood(ctx, message, person)


async def skip_comment(query: CallbackQuery, callback_data: FeedbackCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None) -> None:
    if person is None:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    try:
        await asyncio.to_thread(feedback.skip_comment, ctx, feedback_id=callback_data.fid, person_id=person.id,
                                reply_to=ReplyTo(query.message.chat.id, query.message.message_id))
    except feedback.FeedbackNotFound:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    if (await state.get_state()) == FeedbackFlow.comment.state:
        await state.clear()
    await query.answer()
