"""WeCom's supervisor menus: 统计, an area's KPIs (the figures of Telegram's /stats) as a text message, and
待核查, the verification queue (Telegram's /verify) as a card whose buttons open a case's proof card.

Menu keys: `stats` (the last 7 days), `stats:today`, `stats:7d`, `stats:30d`; `verify`. A queue button's
key is the Telegram keyboard's callback data, `eq:<case id>`. Reading is answered directly; opening a
case records its card as if it had been sent (`VerificationRequested`), which wecom/renderers_supervision.py
queues. Someone who is not an active supervisor is told so.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from models.lifecycle import Role
from onegrid.kpi_text import kpi_lines
from onegrid.refusals import REFUSALS, supervision_refusal
from services import kpi, supervision_access, supervision_queue, verification
from wecom.formats import MAX_BUTTONS, Button
from wecom.texts import local_time

if TYPE_CHECKING:
    from models.tables import Person
    from wecom.actions import Gettext
    from wecom.handlers import Turn

MENU_STATS, MENU_VERIFY = "stats", "verify"
DEFAULT_PERIOD = "7d"


def menu_hint(_: Gettext, person: Person) -> str:
    """What a member who wrote outside any prompt is pointed to: the menus of their roles."""
    hints = []
    if person.has_role(Role.WORKER) or not person.has_role(Role.SUPERVISOR):
        hints.append(_("Use the app's menu: go on or off duty, list your work orders, or file a patrol report."))
    if person.has_role(Role.SUPERVISOR):
        hints.append(_("Supervisors: the 待核查 menu lists the cases awaiting your verification, and the 统计 menu "
                       "shows your area's figures."))
    return "\n".join(hints)


def is_stats_key(key: str) -> bool:
    return key == MENU_STATS or key.startswith(MENU_STATS + ":")


async def stats(turn: Turn, key: str) -> None:
    period = key.partition(":")[2] or DEFAULT_PERIOD
    if period not in kpi.PERIODS:  # a menu set up with a key we do not know: the default, not silence
        period = DEFAULT_PERIOD
    try:
        k = await asyncio.to_thread(kpi.supervisor_kpis, turn.ctx, supervisor_id=turn.person.id, period=period)
    except supervision_access.NotASupervisor as exc:
        await turn.say(refusal(turn._, exc))
        return
    await turn.say("\n".join(kpi_lines(turn._, k, period, str)))  # a text message: nothing to escape


async def verify_queue(turn: Turn) -> None:
    """The cases awaiting verification in the supervisor's area, oldest first; a button for each of the
    oldest (a card holds six), the rest listed. Verifying one brings the next onto the card next time."""
    _ = turn._
    try:
        items = await asyncio.to_thread(supervision_queue.verification_queue, turn.ctx, supervisor_id=turn.person.id)
    except supervision_access.NotASupervisor as exc:
        await turn.say(refusal(_, exc))
        return
    if not items:
        await turn.say(_("Nothing awaits verification in your area."))
        return
    lines = [f"{item.number} · {local_time(item.waiting_since, turn.ctx.timezone)}" for item in items]
    title = _("🔎 Awaiting verification in your area, oldest first ({count}):").format(count=len(items))
    await turn.say(title + "\n" + "\n".join(lines),
                   [Button(item.number, f"eq:{item.case_id}", 1) for item in items[:MAX_BUTTONS]])


async def open_card(turn: Turn, case_id: int) -> None:
    """A queue button: the case's proof card (Approve / Reject, then the photos) comes as a new message."""
    try:
        await asyncio.to_thread(supervision_queue.open_proof_card, turn.ctx, case_id=case_id,
                                supervisor_id=turn.person.id)
    except (*REFUSALS, verification.VerificationError) as exc:
        await turn.say(refusal(turn._, exc))


def refusal(_: Gettext, exc: Exception) -> str:
    """Telegram's words for a supervisor's refusals (onegrid/refusals.py), and for opening one's own work."""
    if isinstance(exc, verification.OwnWork):
        return _("You handled this case yourself, so you cannot verify it. Another supervisor will.")
    return supervision_refusal(_, exc)
