"""Keyboards of welfare checks: the outcome buttons under an accepted check (prefix `wf`)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from bot.worker_ui import Gettext, Markup, navigate_button
from models.elders import WelfareOutcome


class WelfareCb(CallbackData, prefix="wf"):
    task_id: int
    outcome: str  # WelfareOutcome value


def outcome_labels(_: Gettext) -> dict[WelfareOutcome, str]:
    return {
        WelfareOutcome.SAFE: _("🙂 Safe"),
        WelfareOutcome.NEEDS_HELP: _("🚑 Needs help (120 called)"),
        WelfareOutcome.NOT_HOME: _("🏠 Not at home (family reached)"),
        WelfareOutcome.NO_ANSWER: _("🚨 No answer: escalate"),
    }


def outcome_keyboard(_: Gettext, task_id: int, *, navigate_url: str | None = None) -> Markup:
    """One outcome per row (they are long), then Navigate."""
    rows = [[{"text": label, "callback_data": WelfareCb(task_id=task_id, outcome=outcome.value).pack()}]
            for outcome, label in outcome_labels(_).items()]
    if navigate_url:
        rows.append([navigate_button(_, navigate_url)])
    return {"inline_keyboard": rows}
