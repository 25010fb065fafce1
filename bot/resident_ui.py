"""Residents' keyboards and callback data: the buttons of the report flow, /my, 回访, consent, language.

Keyboards are built as Bot API JSON (they travel through the notification queue), from a
`gettext` function so the caller picks the language: aiogram's `_` in handlers,
`onegrid.i18n.gettext_for(locale)` in services. Every callback data fits Telegram's 64 bytes
(checked by tests over the whole catalogue).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Protocol

from aiogram.filters.callback_data import CallbackData

from onegrid.i18n import N_, SUPPORTED, gettext_for

Gettext = Callable[[str], str]

CALLBACK_DATA_MAX_BYTES = 64


class ReportCb(CallbackData, prefix="rp"):
    """A button of one report draft; `draft` ties it to that draft, so stale buttons are refused."""

    draft: str
    act: str
    arg: str = ""
    page: int = 0


class FeedbackCb(CallbackData, prefix="fb"):
    """回访 buttons: act y (fixed) / n (not fixed) / r (rating, with `rating`) / skip (no comment)."""

    fid: int
    act: str
    rating: int = 0


class MyCasesCb(CallbackData, prefix="my"):
    act: str  # pg (a page of the list), open (a case card), wd (withdraw? asks) or wdy (withdraw, confirmed)
    page: int = 0
    case: int = 0


class LangCb(CallbackData, prefix="lang"):
    locale: str


class ConsentCb(CallbackData, prefix="cs"):
    act: str  # yes / no
    then: str = ""  # "report": go on with the report that asked for consent


class AccountCb(CallbackData, prefix="acct"):
    act: str  # delete / keep


PRIVACY_NOTICE = N_(
    "🔒 To handle your reports OneGrid stores what you send: photos (camera data such as GPS removed), "
    "the precise location of the problem, your description, and your Telegram name so we can tell you "
    "how it goes. A precise location is sensitive personal information: it is used only to route and "
    "check your report, grid workers never see your name, and /delete removes your data at any time. "
    "Do you agree?")

# Reply-keyboard labels. Marked for extraction here, translated where the keyboard is built.
REPORT_BUTTON = N_("📝 Report a problem")
MY_CASES_BUTTON = N_("📋 My cases")
LANGUAGE_BUTTON = N_("🌐 Language")
HELP_BUTTON = N_("❓ Help")
CANCEL_BUTTON = N_("✖ Cancel")
LOCATION_BUTTON = N_("📍 Send my location")
NO_PHOTO_BUTTON = N_("⏭ No photo")
PHOTOS_DONE_BUTTON = N_("✅ Done with photos")


def current_locale() -> str:
    """The language of the update being handled (set by the i18n middleware), else the default."""
    from aiogram.utils.i18n import get_i18n

    try:
        return get_i18n().current_locale
    except LookupError:
        return "zh_CN"


@lru_cache(maxsize=64)
def in_every_language(msgid: str) -> frozenset[str]:
    """The label `msgid` as shown in each supported language (to match a pressed reply button)."""
    return frozenset(gettext_for(locale)(msgid) for locale in SUPPORTED)


def kind_token(kind: str) -> str:
    """How a category kind travels in callback data: itself when short, else a short stable hash."""
    if len(kind) <= 24:
        return kind
    return "h" + hashlib.sha1(kind.encode()).hexdigest()[:10]


def button(text: str, data: CallbackData | str) -> dict[str, Any]:
    packed = data.pack() if isinstance(data, CallbackData) else data
    if len(packed.encode()) > CALLBACK_DATA_MAX_BYTES:
        raise ValueError(f"callback data over {CALLBACK_DATA_MAX_BYTES} bytes: {packed!r}")
    return {"text": text, "callback_data": packed}


def inline(rows: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    return {"inline_keyboard": [list(row) for row in rows if row]}


def main_keyboard(_: Gettext) -> dict[str, Any]:
    """The resident's persistent menu."""
    return {
        "keyboard": [
            [{"text": _(REPORT_BUTTON)}],
            [{"text": _(MY_CASES_BUTTON)}, {"text": _(LANGUAGE_BUTTON)}],
            [{"text": _(HELP_BUTTON)}],
        ],
        "resize_keyboard": True,
        "is_persistent": True,
    }


def cancel_keyboard(_: Gettext) -> dict[str, Any]:
    return {"keyboard": [[{"text": _(CANCEL_BUTTON)}]], "resize_keyboard": True, "is_persistent": True}


def evidence_keyboard(_: Gettext, *, ask_location: bool, no_photo: bool, photos_done: bool) -> dict[str, Any]:
    """Photo/location step: the request-location button, "no photo" and "done" where they apply."""
    rows: list[list[dict[str, Any]]] = []
    if ask_location:
        rows.append([{"text": _(LOCATION_BUTTON), "request_location": True}])
    if no_photo:
        rows.append([{"text": _(NO_PHOTO_BUTTON)}])
    if photos_done:
        rows.append([{"text": _(PHOTOS_DONE_BUTTON)}])
    rows.append([{"text": _(CANCEL_BUTTON)}])
    return {"keyboard": rows, "resize_keyboard": True, "is_persistent": True}


def language_keyboard() -> dict[str, Any]:
    # Each language names itself, so it is recognisable whatever language is shown now.
    return inline([[button("中文", LangCb(locale="zh_CN")), button("English", LangCb(locale="en"))]])


def consent_keyboard(_: Gettext, *, then: str = "", locale: str = "zh_CN") -> dict[str, Any]:
    other = ("en", "English") if locale == "zh_CN" else ("zh_CN", "中文")
    return inline([
        [button(_("✅ I agree"), ConsentCb(act="yes", then=then))],
        [button(_("No, thanks"), ConsentCb(act="no")), button("🌐 " + other[1], LangCb(locale=other[0]))],
    ])


def feedback_question(_: Gettext, feedback_id: int) -> dict[str, Any]:
    return inline([[button(_("👍 Yes, fixed"), FeedbackCb(fid=feedback_id, act="y")),
                    button(_("👎 No, not fixed"), FeedbackCb(fid=feedback_id, act="n"))]])


def rating_keyboard(feedback_id: int) -> dict[str, Any]:
    return inline([[button(f"{n} ⭐", FeedbackCb(fid=feedback_id, act="r", rating=n))
                    for n in range(1, 6)]])


def comment_keyboard(_: Gettext, feedback_id: int) -> dict[str, Any]:
    return inline([[button(_("No comment"), FeedbackCb(fid=feedback_id, act="skip"))]])


def account_keyboard(_: Gettext) -> dict[str, Any]:
    return inline([[button(_("🗑 Delete my data"), AccountCb(act="delete")),
                    button(_("Keep it"), AccountCb(act="keep"))]])


# -- the category menu ------------------------------------------------------------------------------

CATEGORIES_PER_PAGE = 6


class _Choice(Protocol):
    code: str
    kind: str

    def label(self, locale: str) -> str: ...


def kinds_of(categories: Sequence[_Choice]) -> list[str]:
    """Kinds in the order of their first category (the catalogue's order)."""
    seen: list[str] = []
    for c in categories:
        if c.kind not in seen:
            seen.append(c.kind)
    return seen


def kinds_keyboard(_: Gettext, draft_id: str, categories: Sequence[_Choice], recent: Sequence[_Choice], *,
                   locale: str, kind_name: Callable[[str], str], frequent: Sequence[_Choice] = ()) -> dict[str, Any]:
    """First screen: one-tap categories (🕘 the resident's recent ones, 🔥 the ones most reported around
    them), then every kind, two per row."""
    rows = [[button("🕘 " + c.label(locale), ReportCb(draft=draft_id, act="cat", arg=c.code))] for c in recent]
    rows += [[button("🔥 " + c.label(locale), ReportCb(draft=draft_id, act="cat", arg=c.code))] for c in frequent]
    kinds = kinds_of(categories)
    for i in range(0, len(kinds), 2):
        rows.append([button(kind_name(k), ReportCb(draft=draft_id, act="kind", arg=kind_token(k)))
                     for k in kinds[i:i + 2]])
    rows.append([button(_("✖ Cancel"), ReportCb(draft=draft_id, act="cancel"))])
    return inline(rows)


def category_keyboard(_: Gettext, draft_id: str, in_kind: Sequence[_Choice], *, token: str, page: int,
                      locale: str) -> dict[str, Any]:
    """One page of a kind's categories, with ◀ n/m ▶ when there is more than one page."""
    pages = max(1, -(-len(in_kind) // CATEGORIES_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = in_kind[page * CATEGORIES_PER_PAGE:(page + 1) * CATEGORIES_PER_PAGE]
    rows = [[button(c.label(locale), ReportCb(draft=draft_id, act="cat", arg=c.code))] for c in shown]
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(button("◀", ReportCb(draft=draft_id, act="kind", arg=token, page=page - 1)))
        nav.append(button(f"{page + 1}/{pages}", ReportCb(draft=draft_id, act="kind", arg=token, page=page)))
        if page < pages - 1:
            nav.append(button("▶", ReportCb(draft=draft_id, act="kind", arg=token, page=page + 1)))
        rows.append(nav)
    rows.append([button(_("⬅ Back"), ReportCb(draft=draft_id, act="kinds")),
                 button(_("✖ Cancel"), ReportCb(draft=draft_id, act="cancel"))])
    return inline(rows)


def patrol_card_keyboard(_: Gettext, draft_id: str) -> dict[str, Any]:
    """A worker's patrol report card (巡查上报): keep the case, or hand it to dispatch; edit or cancel."""
    return inline([
        [button(_("✅ Submit: I will handle it"), ReportCb(draft=draft_id, act="keep"))],
        [button(_("📤 Hand to dispatch"), ReportCb(draft=draft_id, act="hand"))],
        [button(_("✏️ Edit"), ReportCb(draft=draft_id, act="edit")),
         button(_("✖ Cancel"), ReportCb(draft=draft_id, act="cancel"))],
    ])
