"""Msgids both channels word alike: bot/ (Telegram) and wecom/ (WeCom) each translate them for their reader.

Only words that read the same on either channel live here; a channel's own wording (HTML, buttons, its
app's gestures) stays in that channel. Extracted like any other `N_` (Makefile `messages`).
"""

from __future__ import annotations

from models.elders import WelfareOutcome
from onegrid.i18n import N_

# A welfare check's outcomes (bot/alarm_ui.py, wecom/actions.py).
WELFARE_OUTCOMES: dict[WelfareOutcome, str] = {
    WelfareOutcome.SAFE: N_("🙂 Safe"),
    WelfareOutcome.NEEDS_HELP: N_("🚑 Needs help (120 called)"),
    WelfareOutcome.NOT_HOME: N_("🏠 Not at home (family reached)"),
    WelfareOutcome.NO_ANSWER: N_("🚨 No answer: escalate"),
}

# Held orders that went back to dispatch when their worker went off duty, told to the supervisors
# ({worker}, {count}, {numbers}, {minutes}).
HANDED_BACK = N_("↩️ {worker} went off duty and handed back {count} held order(s): {numbers}. "
                 "They are offered to the workers on duty.")
NOT_BACK_IN_TIME = N_("⏰ {worker} went off duty keeping {count} order(s) and was not back within {minutes} min: "
                      "{numbers} went back to dispatch.")
