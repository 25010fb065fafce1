"""Supervision handlers: /verify, /stats, /topic (a forum topic of the supervisor group per area), the buttons
of escalation pings, and the worker's /extend; at startup, the staff's command menus are queued.

Each handler parses the update and calls one service in a worker thread. A change's reply to the
acting person is queued by the renderer of the event the service publishes, in the same transaction;
answers to questions, read-only requests and refusals are sent here. Every service called here checks
the case lies in the supervisor's area subtree, so a replayed button of another street's case is
refused and changes nothing. /stats: handlers/supervision_stats.py.
"""

from __future__ import annotations

import asyncio
import html
import logging

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.supervision import reply_in_topic
from bot.supervision_ui import (
    ExtendCb,
    GrantCb,
    PickCb,
    PingCb,
    QueueCb,
    ShelveCb,
    StatsCb,
    extend_keyboard,
    grant_keyboard,
    queue_keyboard,
    shelve_keyboard,
    workers_keyboard,
)
from handlers.supervision_common import REFUSALS, call, refusal, say
from handlers.supervision_stats import stats, stats_period
from handlers.worker import NOT_A_COMMAND, HasRole
from models.lifecycle import Role
from models.tables import Person
from services import escalation, extensions, staff_menus, supervision_access, supervision_queue, takeover, topics
from services.context import ServiceContext
from services.db import transaction
from bot.renderers.work_text import local_time
from services.verification import VerificationError


log = logging.getLogger("onegrid.supervision")


class ShelveFlow(StatesGroup):
    reason = State()


class RefuseFlow(StatesGroup):
    reason = State()


class ExtendFlow(StatesGroup):
    duration = State()


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    router = Router(name="supervision")
    sup = Router(name="supervision-supervisor")
    for observer in (sup.message, sup.callback_query):
        observer.filter(HasRole(Role.SUPERVISOR))
    sup.message.register(verify_queue, Command("verify"))
    sup.message.register(stats, Command("stats"))
    sup.message.register(topic, Command("topic"))
    sup.callback_query.register(stats_period, StatsCb.filter())
    sup.callback_query.register(open_card, QueueCb.filter())
    sup.callback_query.register(acknowledge, PingCb.filter(F.action == "a"))
    sup.callback_query.register(list_workers, PingCb.filter(F.action == "r"))
    sup.callback_query.register(pick_worker, PickCb.filter())
    sup.callback_query.register(take_over, PingCb.filter(F.action == "t"))
    sup.callback_query.register(ask_grant, PingCb.filter(F.action == "g"))
    sup.callback_query.register(grant, GrantCb.filter())
    sup.callback_query.register(ask_refusal, PingCb.filter(F.action == "x"))
    sup.callback_query.register(ask_shelve_reason, PingCb.filter(F.action == "s"))
    sup.callback_query.register(shelve, ShelveCb.filter())
    sup.callback_query.register(unshelve, PingCb.filter(F.action == "u"))
    sup.message.register(refusal_reason, RefuseFlow.reason, F.text, NOT_A_COMMAND)
    sup.message.register(shelve_reason, ShelveFlow.reason, F.text, NOT_A_COMMAND)
    router.include_router(sup)
    worker = Router(name="supervision-worker")
    for observer in (worker.message, worker.callback_query):
        observer.filter(HasRole(Role.WORKER))
    worker.message.register(extend, Command("extend"))
    worker.callback_query.register(extend_duration, ExtendCb.filter())
    router.include_router(worker)
    router.startup.register(queue_staff_menus)
    return router


async def queue_staff_menus(ctx: ServiceContext) -> None:
    """At startup: every staff member's command menu, through the queue (so failures are retried)."""
    try:
        count = await asyncio.to_thread(staff_menus.queue_all, ctx)
    except Exception:  # noqa: BLE001 - menus are a convenience; the bot must start without them
        log.warning("could not queue the staff command menus", exc_info=True)
        return
    log.info("queued %s staff command menus", count)


# -- /verify --------------------------------------------------------------------------------------------


async def verify_queue(message: Message, ctx: ServiceContext, person: Person) -> None:
    try:
        items = await asyncio.to_thread(supervision_queue.verification_queue, ctx, supervisor_id=person.id)
    except REFUSALS as exc:
        await say(ctx, message.chat.id, person, refusal(exc))
        return
    if not items:
        await say(ctx, message.chat.id, person, _("Nothing awaits verification in your area."))
        return
    rows = [(i.case_id, f"{i.number} · {local_time(i.waiting_since, ctx.timezone)}") for i in items]
    await say(ctx, message.chat.id, person,
               _("🔎 Awaiting verification in your area, oldest first ({count}):").format(count=len(items)),
               queue_keyboard(_, rows))


async def open_card(query: CallbackQuery, callback_data: QueueCb, ctx: ServiceContext, person: Person) -> None:
    try:
        await asyncio.to_thread(supervision_queue.open_proof_card, ctx, case_id=callback_data.case_id,
                                supervisor_id=person.id)
    except VerificationError:
        await query.answer(_("You handled this case yourself, so you cannot verify it. Another supervisor will."),
                           show_alert=True)
        return
    except REFUSALS as exc:
        await query.answer(refusal(exc), show_alert=True)
        return
    await query.answer()


# -- /topic ---------------------------------------------------------------------------------------------


def _topic_refusal(exc: Exception) -> str:
    if isinstance(exc, topics.NotInATopic):
        return _("Send /topic inside a forum topic of your supervisors' group: escalation pings about your area "
                 "then come to that topic. /topic AREA-CODE binds an area of your subtree; /topic off stops it.")
    if isinstance(exc, topics.UnknownArea):
        return _("There is no area {code}.").format(code=html.escape(exc.code))
    if isinstance(exc, topics.NotTheSupervisorGroup):
        return _("This group is not the supervisors' group of {area}: its pings go to another group.").format(
            area=html.escape(exc.area_name))
    if isinstance(exc, supervision_access.OutsideYourArea):
        return _("Area {code} is not in your area's subtree.").format(code=html.escape(str(exc)))
    return refusal(exc)


async def topic(message: Message, command: CommandObject, ctx: ServiceContext, person: Person) -> None:
    args = (command.args or "").split()
    off = bool(args) and args[0].lower() == "off"
    area_code = (args[1] if off and len(args) > 1 else args[0] if args and not off else None)
    thread_id = message.message_thread_id if message.is_topic_message else None
    try:
        if off:
            await asyncio.to_thread(topics.unbind_topic, ctx, supervisor_id=person.id, chat_id=message.chat.id,
                                    message_thread_id=thread_id, area_code=area_code)
        else:
            await asyncio.to_thread(topics.bind_topic, ctx, supervisor_id=person.id, chat_id=message.chat.id,
                                    message_thread_id=thread_id, area_code=area_code)
    except (topics.TopicError, *REFUSALS) as exc:
        # Nothing changed; no person on a group message: a bot removed from a group must not mark them blocked.
        await asyncio.to_thread(_reply_in_topic, ctx, chat_id=message.chat.id, message_thread_id=thread_id,
                                text=_topic_refusal(exc), person_id=person.id if message.chat.id > 0 else None)


def _reply_in_topic(ctx: ServiceContext, **kw) -> None:  # noqa: ANN003
    with transaction(ctx.sessions) as session:
        reply_in_topic(session, ctx, **kw)
    ctx.on_notifications()


# -- escalation pings -----------------------------------------------------------------------------------


async def acknowledge(query: CallbackQuery, callback_data: PingCb, ctx: ServiceContext, person: Person) -> None:
    number = await call(query, escalation.acknowledge, ctx=ctx, case_id=callback_data.case_id,
                         step_id=callback_data.step_id, supervisor_id=person.id)
    if number is not None:
        await query.answer(_("Acknowledged: no more reminders about case {number}.").format(number=number))


async def list_workers(query: CallbackQuery, callback_data: PingCb, ctx: ServiceContext, person: Person) -> None:
    workers = await call(query, takeover.grid_workers, ctx=ctx, case_id=callback_data.case_id,
                          supervisor_id=person.id)
    if workers is None:
        return
    await query.answer()
    if not workers:
        await say(ctx, query.from_user.id, person, _("The case's grid has no active worker of its departments."))
        return
    rows = [(w.person_id, w.name, w.on_duty) for w in workers]
    await say(ctx, query.from_user.id, person, _("Reassign to which worker? (🟢 on duty)"),
               workers_keyboard(_, callback_data.case_id, rows))


async def pick_worker(query: CallbackQuery, callback_data: PickCb, ctx: ServiceContext, person: Person) -> None:
    number = await call(query, takeover.reassign, ctx=ctx, case_id=callback_data.case_id, supervisor_id=person.id,
                         worker_id=callback_data.worker_id)
    if number is not None:
        await query.answer(_("Case {number} was offered to the worker you chose.").format(number=number))


async def take_over(query: CallbackQuery, callback_data: PingCb, ctx: ServiceContext, person: Person) -> None:
    number = await call(query, takeover.take_over, ctx=ctx, case_id=callback_data.case_id, supervisor_id=person.id)
    if number is not None:
        await query.answer(_("You now hold case {number}.").format(number=number))


async def ask_grant(query: CallbackQuery, callback_data: PingCb, ctx: ServiceContext, person: Person) -> None:
    pending = await call(query, extensions.has_pending, ctx=ctx, case_id=callback_data.case_id,
                          supervisor_id=person.id)
    if pending is None:
        return
    await query.answer()
    await say(ctx, query.from_user.id, person, _("How much more working time?"),
               grant_keyboard(_, callback_data.case_id, pending=pending))


async def grant(query: CallbackQuery, callback_data: GrantCb, ctx: ServiceContext, person: Person) -> None:
    due = await call(query, extensions.grant_extension, ctx=ctx, case_id=callback_data.case_id,
                      supervisor_id=person.id, minutes=callback_data.minutes)
    if due is not None:
        await query.answer(_("Extension granted: new deadline {due}.").format(due=local_time(due, ctx.timezone)),
                           show_alert=True)


async def ask_refusal(query: CallbackQuery, callback_data: PingCb, state: FSMContext, ctx: ServiceContext,
                      person: Person) -> None:
    if await call(query, extensions.has_pending, ctx=ctx, case_id=callback_data.case_id,
                   supervisor_id=person.id) is None:
        return
    await query.answer()
    await state.set_state(RefuseFlow.reason)
    await state.set_data({"case_id": callback_data.case_id})
    await say(ctx, query.from_user.id, person, _("Why is the extension refused? Send the reason in one message."))


async def refusal_reason(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    await state.clear()
    try:  # the confirmation is queued with the refusal (ExtensionRefused)
        await asyncio.to_thread(extensions.refuse_extension, ctx, case_id=data["case_id"], supervisor_id=person.id,
                                reason=message.text)
    except REFUSALS as exc:
        await say(ctx, message.chat.id, person, refusal(exc))


async def ask_shelve_reason(query: CallbackQuery, callback_data: PingCb, state: FSMContext, ctx: ServiceContext,
                            person: Person) -> None:
    # Check the scope before asking anything, so a replayed button learns nothing.
    if await call(query, extensions.has_pending, ctx=ctx, case_id=callback_data.case_id,
                   supervisor_id=person.id) is None:
        return
    await query.answer()
    await state.set_state(ShelveFlow.reason)
    await state.set_data({"case_id": callback_data.case_id})
    await say(ctx, query.from_user.id, person,
               _("Why can this case not be solved now? Send the reason in one message."))


async def shelve_reason(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    data = await state.get_data()
    await state.update_data(reason=message.text[:500])
    await say(ctx, message.chat.id, person, _("When should it be reviewed?"), shelve_keyboard(_, data["case_id"]))


async def shelve(query: CallbackQuery, callback_data: ShelveCb, state: FSMContext, ctx: ServiceContext,
                 person: Person) -> None:
    data = await state.get_data()
    if data.get("case_id") != callback_data.case_id or not data.get("reason"):
        await query.answer(_("Press Shelve on the case again and give the reason first."), show_alert=True)
        return
    review_at = extensions.review_date(ctx, callback_data.days)
    number = await call(query, extensions.shelve, ctx=ctx, case_id=callback_data.case_id, supervisor_id=person.id,
                         reason=data["reason"], review_at=review_at)
    if number is not None:
        await state.clear()
        await query.answer(_("Case {number} is shelved until {date}.").format(
            number=number, date=local_time(review_at, ctx.timezone)), show_alert=True)


async def unshelve(query: CallbackQuery, callback_data: PingCb, ctx: ServiceContext, person: Person) -> None:
    number = await call(query, extensions.unshelve, ctx=ctx, case_id=callback_data.case_id, supervisor_id=person.id)
    if number is not None:
        await query.answer(_("Case {number} is back in work; its clock runs again.").format(number=number))


# -- the worker's extension request ---------------------------------------------------------------------


async def extend(message: Message, command: CommandObject, state: FSMContext, ctx: ServiceContext,
                 person: Person) -> None:
    parts = (command.args or "").split(maxsplit=1)
    if len(parts) < 2:
        await say(ctx, message.chat.id, person,
                   _("Write /extend, the case number and the reason, e.g. /extend SH-20261121-000001 waiting for "
                     "a spare part."))
        return
    case_id = await asyncio.to_thread(extensions.find_case, ctx, number=parts[0])
    if case_id is None:
        await say(ctx, message.chat.id, person, _("This case does not exist."))
        return
    await state.set_state(ExtendFlow.duration)
    await state.set_data({"case_id": case_id, "reason": parts[1][:500]})
    await say(ctx, message.chat.id, person, _("How much more working time do you need?"),
               extend_keyboard(_, case_id))


async def extend_duration(query: CallbackQuery, callback_data: ExtendCb, state: FSMContext, ctx: ServiceContext,
                          person: Person) -> None:
    data = await state.get_data()
    if data.get("case_id") != callback_data.case_id or not data.get("reason"):
        await query.answer(_("Send /extend with the case number and the reason first."), show_alert=True)
        return
    number = await call(query, extensions.request_extension, ctx=ctx, case_id=callback_data.case_id,
                         worker_id=person.id, reason=data["reason"], minutes=callback_data.minutes)
    if number is not None:
        await state.clear()
        await query.answer(_("Extension for case {number} requested; your supervisor decides.").format(number=number),
                           show_alert=True)


__all__ = ["build_router"]
