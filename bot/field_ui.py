"""Buttons of field work beside the order: progress notes on a held task, and the off-duty handover question."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from bot.worker_ui import Gettext, Markup, _button


class ProgressCb(CallbackData, prefix="pn"):
    """On a held task: m = show the note buttons; a = arrived, w = waiting for materials,
    d = needs another department, t = write a note."""

    action: str
    task_id: int


class HandoverCb(CallbackData, prefix="ho"):
    """Going off duty with held orders: b = hand them back now, k = keep them (grace period)."""

    choice: str


def progress_button(_: Gettext, task_id: int) -> dict[str, str]:
    return _button(_("📝 Progress note"), ProgressCb(action="m", task_id=task_id))


def progress_keyboard(_: Gettext, task_id: int) -> Markup:
    return {"inline_keyboard": [
        [_button(_("📍 Arrived"), ProgressCb(action="a", task_id=task_id)),
         _button(_("⏳ Waiting for materials"), ProgressCb(action="w", task_id=task_id))],
        [_button(_("🏢 Needs another department"), ProgressCb(action="d", task_id=task_id))],
        [_button(_("✏️ Write a note"), ProgressCb(action="t", task_id=task_id))],
    ]}


def handover_keyboard(_: Gettext) -> Markup:
    return {"inline_keyboard": [
        [_button(_("↩️ Hand them back now"), HandoverCb(choice="b"))],
        [_button(_("⏸ Keep them"), HandoverCb(choice="k"))],
    ]}
