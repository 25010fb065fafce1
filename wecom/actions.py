"""Card buttons: the same actions as the Telegram keyboards (bot/worker_ui.py), with the same words.

A button's `key` is the Telegram keyboard's callback data as aiogram packs it (`prefix:field:field`),
so one action has one name on both channels: `wo:a:<offer>` accept, `wo:r:<offer>` return,
`wt:c:<task>` complete, `wp:d|p|f|x:<completion>` done with photos / retake / submit flagged / finish
later, `sv:a|r:<case>:<version>` approve / reject, `wf:<task>:<outcome>` a welfare check's outcome,
`pn:m|a|w|d|t:<task>` progress notes (the choice, then arrived / waiting / another department / own words),
`wc:<flow>` cancel a prompt, `eq:<case>` open a case of the verification queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.elders import WelfareOutcome
from onegrid.wording import WELFARE_OUTCOMES
from wecom.formats import Button

Gettext = Callable[[str], str]


def offer_buttons(_: Gettext, offer_id: int) -> list[Button]:
    return [Button(_("✅ Accept"), f"wo:a:{offer_id}", 1), Button(_("↩️ Return to dispatcher"), f"wo:r:{offer_id}", 3)]


def task_buttons(_: Gettext, task_id: int, *, can_return: bool = True) -> list[Button]:
    buttons = [Button(_("📸 Complete"), f"wt:c:{task_id}", 1)]
    if can_return:
        buttons.append(Button(_("↩️ Return to dispatcher"), f"wt:r:{task_id}", 3))
    return buttons + [Button(_("📝 Progress note"), f"pn:m:{task_id}", 3)]  # arrived, waiting, another department


def progress_buttons(_: Gettext, task_id: int) -> list[Button]:
    """The notes of bot/field_ui.py `progress_keyboard`: three quick ones, or the worker's own words."""
    return [Button(_("📍 Arrived"), f"pn:a:{task_id}", 1), Button(_("⏳ Waiting for materials"), f"pn:w:{task_id}", 1),
            Button(_("🏢 Needs another department"), f"pn:d:{task_id}", 2),
            Button(_("✏️ Write a note"), f"pn:t:{task_id}", 3)]


def photos_buttons(_: Gettext, completion_id: int, *, have_photos: bool) -> list[Button]:
    buttons = []
    if have_photos:
        buttons += [Button(_("➡️ Done with photos"), f"wp:d:{completion_id}", 1),
                    Button(_("🔁 Retake photos"), f"wp:p:{completion_id}", 3)]
    return buttons + [Button(_("⏸ Finish later"), f"wp:x:{completion_id}", 3)]


def flag_buttons(_: Gettext, completion_id: int) -> list[Button]:
    return [Button(_("⚠️ Submit anyway for the supervisor to judge"), f"wp:f:{completion_id}", 2),
            Button(_("⏸ Finish later"), f"wp:x:{completion_id}", 3)]


def verify_buttons(_: Gettext, case_id: int, version: int) -> list[Button]:
    return [Button(_("✅ Approve and close"), f"sv:a:{case_id}:{version}", 4),
            Button(_("🔁 Reject: rework"), f"sv:r:{case_id}:{version}", 2)]


def outcome_labels(_: Gettext) -> dict[WelfareOutcome, str]:
    """A welfare check's outcomes, in bot/alarm_ui.py's words."""
    return {outcome: _(label) for outcome, label in WELFARE_OUTCOMES.items()}


def outcome_buttons(_: Gettext, task_id: int) -> list[Button]:
    """An accepted welfare check's buttons: what the worker found at the home (then their location records it).

    WeCom shows about ten characters of a button, so two outcomes have shorter words here than on Telegram;
    the prompt and the receipt name the outcome in full (`outcome_labels`).
    """
    short = {**outcome_labels(_), WelfareOutcome.NEEDS_HELP: _("🚑 Needs help"),
             WelfareOutcome.NOT_HOME: _("🏠 Not at home")}
    return [Button(label, f"wf:{task_id}:{outcome.value}", 2 if outcome is WelfareOutcome.NO_ANSWER else 1)
            for outcome, label in short.items()]


def cancel_buttons(_: Gettext, flow: str) -> list[Button]:
    return [Button(_("Cancel"), f"wc:{flow}", 3)]


@dataclass(frozen=True)
class Action:
    """A pressed button's key, parsed: `prefix` (wo, wt, wp, sv, wf, pn, wc), `action` and integer `ids`
    (for `wf`, the action is the outcome and the id the task)."""

    prefix: str
    action: str
    ids: tuple[int, ...]


def parse_key(key: str) -> Action | None:
    parts = key.split(":")
    if len(parts) < 2 or parts[0] not in ("wo", "wt", "wp", "sv", "wf", "pn", "wc", "eq"):
        return None
    if parts[0] == "eq":  # a verification queue's case: `eq:<case id>`, as aiogram packs QueueCb
        return Action("eq", "o", (int(parts[1]),)) if len(parts) == 2 and parts[1].isdigit() else None
    if parts[0] == "wc":
        return Action("wc", parts[1], ())
    if parts[0] == "wf":
        return Action("wf", parts[2], (int(parts[1]),)) if len(parts) == 3 and parts[1].isdigit() else None
    try:
        return Action(parts[0], parts[1], tuple(int(p) for p in parts[2:]))
    except ValueError:
        return None
