"""/stats: the KPIs of the supervisor's area for today, 7 or 30 days (read-only, so replied to directly)."""

from __future__ import annotations

import asyncio
import html

from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.supervision_ui import StatsCb, stats_keyboard
from handlers.supervision_common import REFUSALS, refusal, say
from models.tables import Person
from onegrid.kpi_text import kpi_lines
from services import kpi
from services.context import ServiceContext


# -- /stats ---------------------------------------------------------------------------------------------


def render_kpis(k: kpi.Kpis, period: str) -> str:
    return "\n".join(kpi_lines(_, k, period, html.escape))


async def _send_stats(ctx: ServiceContext, chat_id: int, person: Person, period: str) -> None:
    try:
        k = await asyncio.to_thread(kpi.supervisor_kpis, ctx, supervisor_id=person.id, period=period)
    except REFUSALS as exc:
        await say(ctx, chat_id, person, refusal(exc))
        return
    await say(ctx, chat_id, person, render_kpis(k, period), stats_keyboard(_, period))


async def stats(message: Message, command: CommandObject, ctx: ServiceContext, person: Person) -> None:
    period = (command.args or "7d").strip().lower()
    if period not in kpi.PERIODS:
        await say(ctx, message.chat.id, person, _("Use /stats today, /stats 7d or /stats 30d."))
        return
    await _send_stats(ctx, message.chat.id, person, period)


async def stats_period(query: CallbackQuery, callback_data: StatsCb, ctx: ServiceContext, person: Person) -> None:
    await query.answer()
    if callback_data.period in kpi.PERIODS:
        await _send_stats(ctx, query.from_user.id, person, callback_data.period)


__all__ = ["render_kpis", "stats", "stats_period"]
