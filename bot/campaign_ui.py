"""Buttons of warnings and campaigns: Acknowledge under a warning, ok / problem per checklist item.

Callback data are `CallbackData` classes with two-letter prefixes (well under Telegram's 64 bytes);
keyboards are plain Bot API dicts because they travel in notification rows.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from bot.worker_ui import Gettext, Markup, _button


class WarnAckCb(CallbackData, prefix="ya"):
    """Acknowledge the warning sent to this recipient row."""

    recipient_id: int


class InspectCb(CallbackData, prefix="yi"):
    """Answer checklist item `index` of a campaign place: ok (1) or a problem (0)."""

    place_id: int
    index: int
    ok: int


def ack_keyboard(_: Gettext, recipient_id: int) -> Markup:
    return {"inline_keyboard": [[_button(_("✅ Acknowledge"), WarnAckCb(recipient_id=recipient_id))]]}


def checklist_keyboard(_: Gettext, place_id: int, items: list[str], answers: list[str]) -> Markup:
    """One row per item: ✅ ok and ⚠️ problem (the chosen one marked with ●)."""
    rows = []
    for index, item in enumerate(items):
        answer = answers[index] if index < len(answers) else ""
        ok_mark = "● " if answer == "ok" else ""
        bad_mark = "● " if answer == "problem" else ""
        rows.append([
            _button(f"{ok_mark}✅ {index + 1}. {item}", InspectCb(place_id=place_id, index=index, ok=1)),
            _button(f"{bad_mark}⚠️ " + _("Problem"), InspectCb(place_id=place_id, index=index, ok=0)),
        ])
    return {"inline_keyboard": rows}
