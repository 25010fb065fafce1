"""An area's KPIs as lines of text, worded alike on both channels: Telegram's /stats (handlers/) sends them
as HTML, WeCom's 统计 menu (wecom/) as plain text. Each channel passes its reader's gettext and its escape."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.kpi import Kpis

Gettext = Callable[[str], str]

STATS_ROWS = 5  # grids and workers listed under the patrol share; GET /api/v1/kpis lists them all


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def kpi_lines(_: Gettext, k: Kpis, period: str, escape: Callable[[str], str]) -> list[str]:
    """The figures of `k` for `period` (one of services.kpi.PERIODS), with names passed through `escape`."""
    def hours(value: float | None) -> str:
        return "—" if value is None else _("{hours} h").format(hours=f"{value:.1f}")

    names = {"today": _("today"), "7d": _("the last 7 days"), "30d": _("the last 30 days")}
    lines = [_("📊 {area}, {period}").format(area=escape(k.area_code), period=names[period]),
             _("Registered: {n}").format(n=k.registered),
             _("Closed: {n}").format(n=k.closed),
             _("Closure rate (closed ÷ due): {rate} ({closed}/{due})").format(
                 rate=_pct(k.closure_rate), closed=k.closed_of_due, due=k.due),
             _("On-time closure rate: {rate}").format(rate=_pct(k.on_time_rate)),
             _("Rework rate: {rate}").format(rate=_pct(k.rework_rate)),
             _("Extension rate: {rate}").format(rate=_pct(k.extension_rate)),
             _("Time to accept: mean {mean}, p90 {p90}").format(mean=hours(k.accept_mean_h), p90=hours(k.accept_p90_h)),
             _("Time to close: mean {mean}, p90 {p90}").format(mean=hours(k.close_mean_h), p90=hours(k.close_p90_h)),
             _("Satisfaction: {mean} / 5; dissatisfied: {rate}").format(
                 mean="—" if k.satisfaction_mean is None else f"{k.satisfaction_mean:.2f}",
                 rate=_pct(k.dissatisfaction_rate))]
    if k.worst_grids:
        lines.append(_("Worst grids (overdue open · closure rate):"))
        lines += [f"· {escape(g.grid_code)}: {g.open_overdue} · {_pct(g.closure_rate)}" for g in k.worst_grids]
    return lines + patrol_lines(_, k, escape)


def patrol_lines(_: Gettext, k: Kpis, escape: Callable[[str], str]) -> list[str]:
    """主动发现: the area's patrol share, then the grids and workers with the most cases found on patrol."""
    lines = [_("Found on patrol (主动发现): {rate} ({patrol}/{registered})").format(
        rate=_pct(k.patrol_share), patrol=k.patrol, registered=k.registered)]
    if k.patrol_grids:
        lines.append(_("Patrol share by grid (found on patrol ÷ registered):"))
        lines += [f"· {escape(g.grid_code)}: {_pct(g.share)} ({g.patrol}/{g.registered})"
                  for g in k.patrol_grids[:STATS_ROWS]]
    if k.patrol_workers:
        lines.append(_("Patrol share by worker (found on patrol ÷ their cases):"))
        lines += [f"· {escape(w.name)}: {_pct(w.share)} ({w.found}/{w.cases})"
                  for w in k.patrol_workers[:STATS_ROWS]]
    return lines
