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
from services import kpi
from services.context import ServiceContext


# -- /stats ---------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _hours(value: float | None) -> str:
    return "—" if value is None else _("{hours} h").format(hours=f"{value:.1f}")


def render_kpis(k: kpi.Kpis, period: str) -> str:
    names = {"today": _("today"), "7d": _("the last 7 days"), "30d": _("the last 30 days")}
    lines = [_("📊 {area}, {period}").format(area=html.escape(k.area_code), period=names[period]),
             _("Registered: {n}").format(n=k.registered),
             _("Closed: {n}").format(n=k.closed),
             _("Closure rate (closed ÷ due): {rate} ({closed}/{due})").format(
                 rate=_pct(k.closure_rate), closed=k.closed_of_due, due=k.due),
             _("On-time closure rate: {rate}").format(rate=_pct(k.on_time_rate)),
             _("Rework rate: {rate}").format(rate=_pct(k.rework_rate)),
             _("Extension rate: {rate}").format(rate=_pct(k.extension_rate)),
             _("Time to accept: mean {mean}, p90 {p90}").format(mean=_hours(k.accept_mean_h),
                                                                p90=_hours(k.accept_p90_h)),
             _("Time to close: mean {mean}, p90 {p90}").format(mean=_hours(k.close_mean_h), p90=_hours(k.close_p90_h)),
             _("Satisfaction: {mean} / 5; dissatisfied: {rate}").format(
                 mean="—" if k.satisfaction_mean is None else f"{k.satisfaction_mean:.2f}",
                 rate=_pct(k.dissatisfaction_rate))]
    if k.worst_grids:
        lines.append(_("Worst grids (overdue open · closure rate):"))
        for g in k.worst_grids:
            lines.append(f"· {html.escape(g.grid_code)}: {g.open_overdue} · {_pct(g.closure_rate)}")
    lines += patrol_lines(k)
    return "\n".join(lines)


STATS_ROWS = 5  # grids and workers listed under the patrol share; GET /api/v1/kpis lists them all


def patrol_lines(k: kpi.Kpis) -> list[str]:
    """主动发现: the area's patrol share, then the grids and workers with the most cases found on patrol."""
    lines = [_("Found on patrol (主动发现): {rate} ({patrol}/{registered})").format(
        rate=_pct(k.patrol_share), patrol=k.patrol, registered=k.registered)]
    if k.patrol_grids:
        lines.append(_("Patrol share by grid (found on patrol ÷ registered):"))
        lines += [f"· {html.escape(g.grid_code)}: {_pct(g.share)} ({g.patrol}/{g.registered})"
                  for g in k.patrol_grids[:STATS_ROWS]]
    if k.patrol_workers:
        lines.append(_("Patrol share by worker (found on patrol ÷ their cases):"))
        lines += [f"· {html.escape(w.name)}: {_pct(w.share)} ({w.found}/{w.cases})"
                  for w in k.patrol_workers[:STATS_ROWS]]
    return lines


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
