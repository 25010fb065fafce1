"""Welfare checks: the worker presses what they found (an outcome button), then shares their location on site.

The outcome is recorded by services/welfare.py only with an own, fresh, precise location near the home;
the receipt and the family's message come from its event (bot/renderers/alarms.py).
"""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.alarm_ui import WelfareCb, outcome_labels
from bot.worker_ui import location_request_keyboard, remove_reply_keyboard
from handlers.worker_common import NOT_A_COMMAND, HasRole, fix_of, location_refusal, refusal, reply
from models.elders import WelfareOutcome
from models.lifecycle import Role
from models.tables import Person
from services import welfare, work
from services.context import ServiceContext
from services.notify import send_reply
from services.work_rules import LocationProblem


class WelfareFlow(StatesGroup):
    location = State()


def build_router() -> Router:
    router = Router(name="welfare-checks")
    for observer in (router.message, router.callback_query):
        observer.filter(HasRole(Role.WORKER, Role.SUPERVISOR))
    router.callback_query.register(choose_outcome, WelfareCb.filter())
    router.message.register(cancel, Command("cancel"), StateFilter(WelfareFlow))
    router.message.register(outcome_location, StateFilter(WelfareFlow.location), F.location)
    router.message.register(location_hint, StateFilter(WelfareFlow.location), NOT_A_COMMAND)
    return router


async def choose_outcome(query: CallbackQuery, callback_data: WelfareCb, state: FSMContext, ctx: ServiceContext,
                         person: Person) -> None:
    try:
        outcome = WelfareOutcome(callback_data.outcome)
        number = await asyncio.to_thread(welfare.held_check, ctx, task_id=callback_data.task_id, worker_id=person.id)
    except ValueError:
        await query.answer()
        return
    except work.WorkError as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()
    await state.set_state(WelfareFlow.location)
    await state.set_data({"task_id": callback_data.task_id, "outcome": outcome.value})
    text = _("Case {number}: {outcome}. Now share your location at the home (📎 → Location, or the button "
             "below) to record it; /cancel to choose again.").format(number=number, outcome=outcome_labels(_)[outcome])
    await asyncio.to_thread(send_reply, ctx, chat_id=query.from_user.id, person_id=person.id, text=text,
                            reply_markup=location_request_keyboard(_))


async def outcome_location(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    try:  # the service's event answers with the receipt
        await asyncio.to_thread(welfare.record_outcome, ctx, task_id=data["task_id"], worker_id=person.id,
                                outcome=WelfareOutcome(data["outcome"]), fix=fix_of(message))
    except work.LocationRefused as exc:
        await reply(ctx, message, _refusal(exc.judgement, ctx.settings.proof_location_max_accuracy_m), person,
                    location_request_keyboard(_))
        return
    except work.WorkError as exc:
        await state.clear()
        await reply(ctx, message, refusal(exc), person, remove_reply_keyboard())
        return
    await state.clear()


def _refusal(judgement: work.LocationJudgement, max_accuracy_m: float) -> str:
    problems = judgement.problems
    if judgement.refused_outright or judgement.clearly_far:
        return location_refusal(judgement)
    if LocationProblem.LOW_ACCURACY in problems:
        return _("📍 Your location is only accurate to ±{accuracy} m; at most ±{max} m is accepted. "
                 "Wait for a better GPS fix outdoors and send it again.").format(
            accuracy=round(judgement.accuracy_m), max=round(max_accuracy_m))
    return _("📍 You are {distance} m from the case point; at most {allowed} m is accepted here. "
             "Go to the place and send your location again.").format(
        distance=round(judgement.distance_m), allowed=round(judgement.allowed_m))


async def location_hint(message: Message, ctx: ServiceContext, person: Person) -> None:
    await reply(ctx, message, _("Share your location at the home to record the outcome (📎 → Location), or "
                                "/cancel."), person, location_request_keyboard(_))


async def cancel(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    await state.clear()
    await reply(ctx, message, _("Cancelled: nothing was recorded. Press an outcome on the order again."), person,
                remove_reply_keyboard())
