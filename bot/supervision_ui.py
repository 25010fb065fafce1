"""Buttons of supervision: escalation pings, extensions, shelving, the verification queue, /stats.

Callback data are `CallbackData` classes with two-letter prefixes starting with "e" (well under
Telegram's 64 bytes). Keyboards are plain Bot API dicts because most travel in notification rows;
builders take the recipient's `gettext`.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from bot.worker_ui import Gettext, Markup, _button
from onegrid.i18n import N_


class PingCb(CallbackData, prefix="ep"):
    """Under an escalation ping: r = reassign (list workers), g = grant extension, t = take over,
    a = acknowledge, s = shelve, u = unshelve (review), x = refuse a pending extension."""

    action: str
    case_id: int
    step_id: int = 0


class PickCb(CallbackData, prefix="ew"):
    """Reassign to this worker of the grid."""

    case_id: int
    worker_id: int


class GrantCb(CallbackData, prefix="eg"):
    """Grant an extension of this many working minutes."""

    case_id: int
    minutes: int


class ShelveCb(CallbackData, prefix="es"):
    """Shelve with a review in this many days (after the reason was given)."""

    case_id: int
    days: int


class QueueCb(CallbackData, prefix="eq"):
    """Open the proof card of a case in the verification queue."""

    case_id: int


class StatsCb(CallbackData, prefix="et"):
    """Switch /stats to a period: today, 7d, 30d."""

    period: str


class ExtendCb(CallbackData, prefix="ex"):
    """The worker's "request extension": ask for this many working minutes on a case."""

    case_id: int
    minutes: int


GRANT_CHOICES = (240, 480, 1440)  # working minutes: half a day, a working day, three days (8 h days)
SHELVE_CHOICES = (7, 30, 90)  # days until review


def ping_keyboard(_: Gettext, case_id: int, step_id: int) -> Markup:
    return {"inline_keyboard": [
        [_button(_("👷 Reassign"), PingCb(action="r", case_id=case_id, step_id=step_id)),
         _button(_("⏳ Grant extension"), PingCb(action="g", case_id=case_id, step_id=step_id))],
        [_button(_("🙋 Take over"), PingCb(action="t", case_id=case_id, step_id=step_id)),
         _button(_("👌 Acknowledge"), PingCb(action="a", case_id=case_id, step_id=step_id))],
        [_button(_("🗄 Shelve"), PingCb(action="s", case_id=case_id, step_id=step_id))],
        case_end_row(_, case_id),
    ]}


def batch_keyboard(_: Gettext, items: list[tuple[int, int, str]]) -> Markup:
    """One Acknowledge button per case of a batched group ping: (case id, step id, number)."""
    return {"inline_keyboard": [
        [_button(_("👌 {number}").format(number=number), PingCb(action="a", case_id=case_id, step_id=step_id))]
        for case_id, step_id, number in items
    ]}


def review_keyboard(_: Gettext, case_id: int) -> Markup:
    return {"inline_keyboard": [[
        _button(_("▶️ Take off the shelf"), PingCb(action="u", case_id=case_id)),
        _button(_("🗄 Keep shelved"), PingCb(action="s", case_id=case_id)),
    ]]}


def workers_keyboard(_: Gettext, case_id: int, rows: list[tuple[int, str, bool]]) -> Markup:
    """(worker id, name, on duty) → one button each."""
    return {"inline_keyboard": [
        [_button(("🟢 " if on_duty else "⚪ ") + name[:40], PickCb(case_id=case_id, worker_id=wid))]
        for wid, name, on_duty in rows
    ]}


def _duration(_: Gettext, minutes: int) -> str:
    if minutes % 480 == 0:
        return _("+{days} working days").format(days=minutes // 480) if minutes > 480 else _("+1 working day")
    return _("+{hours} working hours").format(hours=minutes // 60)


def grant_keyboard(_: Gettext, case_id: int, *, pending: bool) -> Markup:
    rows = [[_button(_duration(_, m), GrantCb(case_id=case_id, minutes=m)) for m in GRANT_CHOICES]]
    if pending:
        rows.append([_button(_("✖️ Refuse the request"), PingCb(action="x", case_id=case_id))])
    return {"inline_keyboard": rows}


def extend_keyboard(_: Gettext, case_id: int) -> Markup:
    return {"inline_keyboard": [[_button(_duration(_, m), ExtendCb(case_id=case_id, minutes=m))
                                 for m in GRANT_CHOICES]]}


def shelve_keyboard(_: Gettext, case_id: int) -> Markup:
    return {"inline_keyboard": [[_button(_("Review in {days} days").format(days=d), ShelveCb(case_id=case_id, days=d))
                                 for d in SHELVE_CHOICES]]}


def queue_keyboard(_: Gettext, rows: list[tuple[int, str]]) -> Markup:
    return {"inline_keyboard": [[_button(label[:60], QueueCb(case_id=case_id))] for case_id, label in rows]}


def stats_keyboard(_: Gettext, current: str) -> Markup:
    labels = (("today", _("Today")), ("7d", _("7 days")), ("30d", _("30 days")))
    return {"inline_keyboard": [[_button(("• " if code == current else "") + label, StatsCb(period=code))
                                 for code, label in labels]]}


# -- cancel (注销) and merge from a case card ---------------------------------------------------------


class CaseEndCb(CallbackData, prefix="ek"):
    """On a supervisor's case card: c = cancel (choose a reason), r = cancel with quick reason `arg`,
    o = cancel with a reason to type, m = merge (choose the surviving case), i = merge into case `arg`,
    n = merge into a case number to type."""

    action: str
    case_id: int
    arg: int = 0


# Quick reasons of a cancellation; the supervisor's language words the one stored and shown to followers.
CANCEL_REASONS = (
    N_("Nothing found on site"),
    N_("Not a problem of public space"),
    N_("Outside our jurisdiction"),
    N_("False or joke report"),
)


def case_end_row(_: Gettext, case_id: int) -> list[dict]:
    return [_button(_("🚫 Cancel case"), CaseEndCb(action="c", case_id=case_id)),
            _button(_("🔗 Merge duplicate"), CaseEndCb(action="m", case_id=case_id))]


def cancel_reasons_keyboard(_: Gettext, case_id: int) -> Markup:
    rows = [[_button(_(reason), CaseEndCb(action="r", case_id=case_id, arg=index))]
            for index, reason in enumerate(CANCEL_REASONS)]
    rows.append([_button(_("✏️ Another reason…"), CaseEndCb(action="o", case_id=case_id))])
    return {"inline_keyboard": rows}


def merge_targets_keyboard(_: Gettext, case_id: int, targets: list[tuple[int, str, str]]) -> Markup:
    """(id, number, category label) of candidate surviving cases, then "type a number"."""
    rows = [[_button(f"{number} · {label}"[:60], CaseEndCb(action="i", case_id=case_id, arg=target_id))]
            for target_id, number, label in targets]
    rows.append([_button(_("⌨️ Type the case number…"), CaseEndCb(action="n", case_id=case_id))])
    return {"inline_keyboard": rows}
