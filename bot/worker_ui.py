"""Buttons of the staff side: work orders, proofs, verification cards, the staff list.

Callback data are `CallbackData` classes with two-letter prefixes, always well under Telegram's
64 bytes. Keyboards are plain Bot API dicts, because most of them travel in notification rows
written by services (services/notify.py); every builder takes the `gettext` of the recipient's
language, so a service renders for someone else and a handler for the person acting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiogram.filters.callback_data import CallbackData

from onegrid.i18n import N_

Gettext = Callable[[str], str]
Markup = dict[str, Any]


class OfferCb(CallbackData, prefix="wo"):
    """A button under a work-order offer: a = accept, r = return to dispatcher."""

    action: str
    offer_id: int


class TaskCb(CallbackData, prefix="wt"):
    """A button for a task the worker holds: c = complete, r = return to dispatcher."""

    action: str
    task_id: int


class ProofCb(CallbackData, prefix="wp"):
    """During completion: f = submit flagged, x = leave for now; d = photos done and p = retake photos are
    no longer sent (the photo's receipt asks for the location) but still work on older messages."""

    action: str
    completion_id: int


class VerifyCb(CallbackData, prefix="sv"):
    """Under a proof card: a = approve, r = reject. `version` pins the round the card was made for."""

    action: str
    case_id: int
    version: int


class StaffCb(CallbackData, prefix="ss"):
    """The supervisor's staff list: p = show page, d = ask to deactivate, y = confirm deactivation."""

    action: str
    person_id: int = 0
    page: int = 0


class CancelCb(CallbackData, prefix="wc"):
    """Leave a prompt that waits for a reason (return, reject)."""

    flow: str


def _button(text: str, data: CallbackData) -> dict[str, str]:
    return {"text": text, "callback_data": data.pack()}


def offer_keyboard(_: Gettext, offer_id: int, *, navigate_url: str | None = None) -> Markup:
    """Accept and Return; with `navigate_url`, a second row that opens navigation to the site."""
    rows = [[
        _button(_("✅ Accept"), OfferCb(action="a", offer_id=offer_id)),
        _button(_("↩️ Return to dispatcher"), OfferCb(action="r", offer_id=offer_id)),
    ]]
    if navigate_url:
        rows.append([navigate_button(_, navigate_url)])
    return {"inline_keyboard": rows}


def task_keyboard(_: Gettext, task_id: int, *, can_return: bool = True, navigate_url: str | None = None) -> Markup:
    row = [_button(_("📸 Complete"), TaskCb(action="c", task_id=task_id))]
    if can_return:
        row.append(_button(_("↩️ Return to dispatcher"), TaskCb(action="r", task_id=task_id)))
    rows = [row]
    if navigate_url:
        rows.append([navigate_button(_, navigate_url)])
    from bot.field_ui import progress_button  # it builds on this module's helpers

    rows.append([progress_button(_, task_id)])  # on the way: arrived, waiting, needs another department
    return {"inline_keyboard": rows}


def navigate_button(_: Gettext, url: str) -> dict[str, str]:
    """A URL button: one tap opens turn-by-turn navigation to the site (no message, no callback)."""
    return {"text": _("🧭 Navigate"), "url": url}


def tasks_list_keyboard(_: Gettext, rows: list[tuple[int, str, bool]]) -> Markup:
    """One row per held task: (task id, case number, may be returned)."""
    keyboard = []
    for task_id, number, can_return in rows:
        row = [_button(_("📸 Complete {number}").format(number=number), TaskCb(action="c", task_id=task_id))]
        if can_return:
            row.append(_button(_("↩️ Return"), TaskCb(action="r", task_id=task_id)))
        keyboard.append(row)
    return {"inline_keyboard": keyboard}


def photos_keyboard(_: Gettext, completion_id: int) -> Markup:
    """While no photo is in: leave for now. Once one is, `proof_keyboard` takes over (it asks for the location)."""
    return {"inline_keyboard": [[_button(_("⏸ Finish later"), ProofCb(action="x", completion_id=completion_id))]]}


# Reply-keyboard labels shown with a proof photo's receipt (matched in every language when pressed).
RETAKE_PHOTOS_BUTTON = N_("🔁 Retake photos")
FINISH_LATER_BUTTON = N_("⏸ Finish later")


def proof_keyboard(_: Gettext) -> Markup:
    """With a proof photo's receipt: share the location (which submits), or retake the photos, or pause.

    A reply keyboard, because only it can ask for the location; the other two send their label."""
    return {
        "keyboard": [[{"text": _("📍 Send my current location"), "request_location": True}],
                     [{"text": _(RETAKE_PHOTOS_BUTTON)}, {"text": _(FINISH_LATER_BUTTON)}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
        "input_field_placeholder": _("Send more photos, or your location on site"),
    }


def location_request_keyboard(_: Gettext) -> Markup:
    """A reply keyboard whose button shares the current position (a live location is sent via 📎)."""
    return {
        "keyboard": [[{"text": _("📍 Send my current location"), "request_location": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
        "input_field_placeholder": _("Share your location on site"),
    }


def remove_reply_keyboard() -> Markup:
    return {"remove_keyboard": True}


def flag_keyboard(_: Gettext, completion_id: int, *, may_flag: bool = True) -> Markup:
    flag = [_button(_("⚠️ Submit anyway for the supervisor to judge"),
                    ProofCb(action="f", completion_id=completion_id))]
    return {"inline_keyboard": [
        *([flag] if may_flag else []),
        [_button(_("⏸ Finish later"), ProofCb(action="x", completion_id=completion_id))],
    ]}


def verify_keyboard(_: Gettext, case_id: int, version: int) -> Markup:
    return {"inline_keyboard": [[
        _button(_("✅ Approve and close"), VerifyCb(action="a", case_id=case_id, version=version)),
        _button(_("🔁 Reject: rework"), VerifyCb(action="r", case_id=case_id, version=version)),
    ]]}


def cancel_keyboard(_: Gettext, flow: str) -> Markup:
    return {"inline_keyboard": [[_button(_("Cancel"), CancelCb(flow=flow))]]}


def staff_keyboard(_: Gettext, rows: list[tuple[int, str]], *, page: int, has_more: bool) -> Markup:
    """One row per active worker: (person id, label); paging buttons when the list is long."""
    keyboard = [[_button(_("🚫 Deactivate {name}").format(name=label), StaffCb(action="d", person_id=pid, page=page))]
                for pid, label in rows]
    paging = []
    if page > 0:
        paging.append(_button(_("◀️ Previous"), StaffCb(action="p", page=page - 1)))
    if has_more:
        paging.append(_button(_("Next ▶️"), StaffCb(action="p", page=page + 1)))
    if paging:
        keyboard.append(paging)
    return {"inline_keyboard": keyboard}


def confirm_deactivation_keyboard(_: Gettext, person_id: int, page: int) -> Markup:
    return {"inline_keyboard": [[
        _button(_("Yes, deactivate"), StaffCb(action="y", person_id=person_id, page=page)),
        _button(_("No"), StaffCb(action="p", page=page)),
    ]]}
