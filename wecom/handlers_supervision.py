"""WeCom's 统计 menu: a supervisor's area KPIs, the figures of Telegram's /stats, as a text message.

Menu keys: `stats` (the last 7 days), `stats:today`, `stats:7d`, `stats:30d`. Read-only, so answered
directly; someone who is not an active supervisor is told so.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from onegrid.kpi_text import kpi_lines
from services import kpi
from services.supervision_access import NotASupervisor

if TYPE_CHECKING:
    from wecom.handlers import Turn

MENU_STATS = "stats"
DEFAULT_PERIOD = "7d"


def is_stats_key(key: str) -> bool:
    return key == MENU_STATS or key.startswith(MENU_STATS + ":")


async def stats(turn: Turn, key: str) -> None:
    period = key.partition(":")[2] or DEFAULT_PERIOD
    if period not in kpi.PERIODS:  # a menu set up with a key we do not know: the default, not silence
        period = DEFAULT_PERIOD
    try:
        k = await asyncio.to_thread(kpi.supervisor_kpis, turn.ctx, supervisor_id=turn.person.id, period=period)
    except NotASupervisor:
        await turn.say(turn._("Only an active supervisor of this area can do that."))
        return
    await turn.say("\n".join(kpi_lines(turn._, k, period, str)))  # a text message: nothing to escape
