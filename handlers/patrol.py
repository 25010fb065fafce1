"""巡查上报: a grid worker on duty reports a problem they found (worker menu /patrol, or /report).

The worker walks the resident's report steps (category → photos → location → a few words → card, the
handlers of handlers/resident_report*.py, on a draft marked `patrol`), with no consent screen, no report
limit and no "same problem?" step. The card's buttons differ: "I will handle it" files the case as the
worker's own order, "Hand to dispatch" files it for dispatch (another department's job). Both call
services/patrol.py; the answer and the order are queued by its events (bot/renderers/patrol.py).

A worker's /report and the "📝 Report a problem" button start this flow too: a staff account reports as
staff, on duty, and its cases count as 主动发现. (Reporting as a private resident is for a personal account.)
"""

from __future__ import annotations

import asyncio

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.resident_outbox import Outgoing
from bot.resident_ui import REPORT_BUTTON, ReportCb, evidence_keyboard, in_every_language
from handlers.resident_report_kit import (
    ReportButton,
    ReportFlow,
    broken_report,
    category_or_restart,
    fetch_photos,
    kinds_keyboard_for,
    reply,
    save,
)
from handlers.worker_common import HasRole, refusal
from models.events.resident import ReplyTo
from models.lifecycle import Role
from models.tables import Person
from services import patrol, report_choices
from services.cases import OutsideGrid
from services.context import ServiceContext
from services.photos import PhotoRejected
from services.report_draft import DRAFT_STATE_PREFIX, CategoryUnavailable, ReportDraft
from services.work_common import WorkError


def build_router() -> Router:
    """A fresh Router each call. Include it before the resident router: it claims workers' /report."""
    router = Router(name="patrol")
    router.message.filter(F.chat.type == ChatType.PRIVATE, HasRole(Role.WORKER))
    router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE, HasRole(Role.WORKER))
    router.message.register(start_patrol, Command("patrol"))
    router.message.register(start_patrol, Command("report"))
    router.message.register(start_patrol, F.text.in_(in_every_language(REPORT_BUTTON)))
    router.callback_query.register(file_report, ReportCb.filter(F.act.in_({"keep", "hand"})), ReportButton())
    return router


def off_duty_text() -> str:
    return _("You are off duty. Patrol reports are filed on duty: send /duty, then /patrol.")


async def start_patrol(message: Message, state: FSMContext, ctx: ServiceContext, person: Person) -> None:
    chat_id = message.chat.id
    try:
        await asyncio.to_thread(patrol.patrol_allowed, ctx, worker_id=person.id)
    except patrol.OffDuty:
        await reply(ctx, chat_id, person, Outgoing(off_duty_text()))
        return
    except WorkError as exc:
        await reply(ctx, chat_id, person, Outgoing(refusal(exc)))
        return
    current = await state.get_state()
    replaced = bool(current and current.startswith(DRAFT_STATE_PREFIX))
    draft = ReportDraft.new(chat_id=chat_id, now=ctx.clock.now())
    draft.patrol = True
    await state.set_state(ReportFlow.category)
    await save(state, ctx, draft)
    categories = await asyncio.to_thread(report_choices.active_categories, ctx)
    recent = await asyncio.to_thread(report_choices.recent_categories, ctx, person_id=person.id)
    lead = _("The unfinished report was discarded.") + "\n" if replaced else ""
    text = lead + _("🚶 Patrol report (巡查上报). What did you find? Choose a kind:")
    await reply(ctx, chat_id, person, Outgoing(text, kinds_keyboard_for(draft, categories, recent)))


async def file_report(query: CallbackQuery, callback_data: ReportCb, state: FSMContext, ctx: ServiceContext,
                      person: Person, bot: Bot, draft: ReportDraft) -> None:
    """The card's "I will handle it" (keep) or "Hand to dispatch" (hand)."""
    if (await state.get_state() != ReportFlow.confirm.state or not draft.patrol or draft.category is None
            or not draft.located):
        await query.answer(_("Please finish the report first."), show_alert=True)
        return
    chat_id = query.message.chat.id
    photos = await fetch_photos(query, bot, draft)
    if photos is None:
        return
    card_id = query.message.message_id
    try:
        done = await asyncio.to_thread(
            patrol.submit_patrol_report, ctx, worker_id=person.id, draft=draft, photos=photos,
            hand_to_dispatch=callback_data.act == "hand", reply_to=ReplyTo(chat_id, card_id))
    except patrol.OffDuty:
        await query.answer(off_duty_text(), show_alert=True)  # the draft stays: /duty, then press again
        return
    except WorkError as exc:
        await state.clear()
        await query.answer(refusal(exc), show_alert=True)
        return
    except OutsideGrid:
        await query.answer()
        draft.lat = draft.lon = draft.grid_code = None
        draft.editing = True
        await state.set_state(ReportFlow.evidence)
        await save(state, ctx, draft)
        await reply(ctx, chat_id, person, Outgoing(None, edit_message_id=card_id), Outgoing(
            _("The map has changed and this place is no longer inside a grid. Please share the location again."),
            evidence_keyboard(_, ask_location=True, no_photo=False, photos_done=False)))
        return
    except CategoryUnavailable:
        await query.answer()
        draft.editing = True
        await category_or_restart(draft, state, ctx, chat_id, person)
        return
    except PhotoRejected:
        await broken_report(query, state)
        return
    await state.clear()
    if done.created:
        await query.answer(_("Sent."))
    else:
        await query.answer(_("Already sent: case {number}.").format(number=done.number), show_alert=True)


__all__ = ["build_router", "off_duty_text"]
