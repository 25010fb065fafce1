"""Keyboards of welfare checks: the outcome buttons under an accepted check (prefix `wf`)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from bot.worker_ui import Gettext, Markup, navigate_button
from models.elders import WelfareOutcome
from onegrid.wording import WELFARE_OUTCOMES


class WelfareCb(CallbackData, prefix="wf"):
    task_id: int
    outcome: str  # WelfareOutcome value


def outcome_labels(_: Gettext) -> dict[WelfareOutcome, str]:
    return {outcome: _(label) for outcome, label in WELFARE_OUTCOMES.items()}


def outcome_keyboard(_: Gettext, task_id: int, *, navigate_url: str | None = None) -> Markup:
    """One outcome per row (they are long), then Navigate."""
    rows = [[{"text": label, "callback_data": WelfareCb(task_id=task_id, outcome=outcome.value).pack()}]
            for outcome, label in outcome_labels(_).items()]
    if navigate_url:
        rows.append([navigate_button(_, navigate_url)])
    return {"inline_keyboard": rows}
