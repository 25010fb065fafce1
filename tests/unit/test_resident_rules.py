"""Pure rules of the resident side: callback sizes, the category menu, masking, descriptions, drafts, shedding."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiogram.fsm.storage.base import StorageKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.resident_ui import (
    CALLBACK_DATA_MAX_BYTES,
    CATEGORIES_PER_PAGE,
    FeedbackCb,
    MyCasesCb,
    ReportCb,
    category_keyboard,
    kind_token,
    kinds_keyboard,
)
from bot.throttle import FloodNotices, FloodShed, SheddingEventIsolation
from services.catalogue import CATEGORY_CODE_MAX, load_catalogue
from services.report_draft import DescriptionTooLong, ReportDraft, clean_description
from services.privacy import mask_name, mask_phone

codes = st.from_regex(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", fullmatch=True)


@dataclass
class Choice:
    code: str
    kind: str

    def label(self, locale: str) -> str:
        return self.code


def _all_data(keyboard: dict) -> list[str]:
    return [b["callback_data"] for row in keyboard["inline_keyboard"] for b in row]


def _ident(text: str) -> str:
    return text


def test_every_button_of_the_real_catalogue_fits_telegrams_64_bytes() -> None:
    catalogue = load_catalogue()
    choices = [Choice(c.code, c.kind) for c in catalogue.categories]
    draft_id = ReportDraft.new(chat_id=1, now=datetime.now(UTC)).draft_id
    keyboards = [kinds_keyboard(_ident, draft_id, choices, choices[:3], locale="en", kind_name=_ident)]
    for kind in {c.kind for c in choices}:
        in_kind = [c for c in choices if c.kind == kind]
        keyboards.append(category_keyboard(_ident, draft_id, in_kind, token=kind_token(kind), page=0, locale="en"))
    for data in (d for k in keyboards for d in _all_data(k)):
        assert len(data.encode()) <= CALLBACK_DATA_MAX_BYTES, data


@given(code=codes.filter(lambda c: len(c) <= CATEGORY_CODE_MAX), kind=codes.filter(lambda k: len(k) <= 64),
       page=st.integers(0, 99), case_id=st.integers(1, 2**53), feedback_id=st.integers(1, 2**53))
def test_callback_data_fits_for_any_valid_codes_and_ids(code, kind, page, case_id, feedback_id) -> None:  # noqa: ANN001
    draft = "0123abcd"
    packed = [
        ReportCb(draft=draft, act="cat", arg=code).pack(),
        ReportCb(draft=draft, act="kind", arg=kind_token(kind), page=page).pack(),
        ReportCb(draft=draft, act="same", arg=str(case_id)).pack(),
        FeedbackCb(fid=feedback_id, act="r", rating=5).pack(),
        MyCasesCb(act="open", page=page, case=case_id).pack(),
    ]
    assert all(len(p.encode()) <= CALLBACK_DATA_MAX_BYTES for p in packed), packed


def test_a_long_kind_pages_its_categories() -> None:
    in_kind = [Choice(f"cat_{i}", "k") for i in range(CATEGORIES_PER_PAGE * 2 + 1)]
    first = category_keyboard(_ident, "d", in_kind, token="k", page=0, locale="en")
    last = category_keyboard(_ident, "d", in_kind, token="k", page=9, locale="en")  # clamped to the last page
    assert [b["text"] for b in first["inline_keyboard"][-2]] == ["1/3", "▶"]
    assert [b["text"] for b in last["inline_keyboard"][-2]] == ["◀", "3/3"]
    assert [row[0]["text"] for row in last["inline_keyboard"][:-2]] == [f"cat_{CATEGORIES_PER_PAGE * 2}"]
    shown = [row[0]["text"] for p in range(3) for row in
             category_keyboard(_ident, "d", in_kind, token="k", page=p, locale="en")["inline_keyboard"][:-2]]
    assert shown == [c.code for c in in_kind]  # every category on exactly one page


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_a_masked_mobile_number_hides_the_middle_four_digits(phone: str) -> None:
    masked = mask_phone(phone)
    assert masked == phone[:3] + "****" + phone[-4:]
    assert mask_phone("+86 " + phone[:3] + " " + phone[3:7] + " " + phone[7:]) == masked


@given(st.text(min_size=0, max_size=12).filter(lambda s: s.strip()))
def test_a_masked_name_shows_one_character(name: str) -> None:
    masked = mask_name(name)
    # One or two stars whatever the length, so the mask does not tell how long the name is.
    assert masked[0] == name.strip()[0] and set(masked[1:]) == {"*"} and 2 <= len(masked) <= 3


@settings(max_examples=200)
@given(st.text(max_size=300), st.integers(min_value=10, max_value=200))
def test_descriptions_are_trimmed_and_limited(text: str, limit: int) -> None:
    try:
        cleaned = clean_description(text, limit=limit)
    except DescriptionTooLong as exc:
        assert exc.length > limit
        return
    assert len(cleaned) <= limit
    assert cleaned == clean_description(cleaned, limit=limit)  # cleaning twice changes nothing
    assert all(line == line.strip() and line for line in cleaned.splitlines())
    assert not any(ord(ch) < 32 and ch != "\n" for ch in cleaned)


def test_a_draft_survives_the_round_trip_through_the_state_and_expires() -> None:
    now = datetime(2026, 11, 21, 2, tzinfo=UTC)
    draft = ReportDraft.new(chat_id=7, now=now)
    draft.category, draft.lat, draft.lon = "exposed_garbage", 31.2, 121.4
    again = ReportDraft.from_state(draft.to_state())
    assert again == draft
    assert not again.expired(now + timedelta(minutes=30), timedelta(minutes=30))
    assert again.expired(now + timedelta(minutes=31), timedelta(minutes=30))
    assert ReportDraft.from_state({}) is None


async def test_isolation_runs_one_conversation_in_order_and_sheds_the_rest() -> None:
    isolation = SheddingEventIsolation(max_pending=3)
    key, other = StorageKey(bot_id=1, chat_id=10, user_id=10), StorageKey(bot_id=1, chat_id=11, user_id=11)
    gate = asyncio.Event()
    order: list[int] = []

    async def handle(n: int, k: StorageKey) -> str:
        try:
            async with isolation.lock(k):
                if n == 0:
                    await gate.wait()
                order.append(n)
                return "done"
        except FloodShed:
            return "shed"

    tasks = [asyncio.create_task(handle(n, key)) for n in range(6)]
    await asyncio.sleep(0)
    assert await handle(99, other) == "done"  # another conversation is not held up
    gate.set()
    results = await asyncio.gather(*tasks)
    assert results == ["done", "done", "done", "shed", "shed", "shed"]
    assert order == [99, 0, 1, 2]
    assert isolation.shed == 3 and isolation.waiting(key) == 0  # idle conversations are forgotten


def test_flood_notices_are_rate_limited_per_user() -> None:
    now = [0.0]
    notices = FloodNotices(interval=60, clock=lambda: now[0])
    assert notices.due(1) and not notices.due(1) and notices.due(2)
    now[0] = 61
    assert notices.due(1)


def test_kind_tokens_are_short_and_stable() -> None:
    long_kind = "a" * 64
    assert kind_token("environment") == "environment"
    assert kind_token(long_kind) == kind_token(long_kind) and len(kind_token(long_kind)) == 11


@pytest.mark.parametrize("bad", [0, -1])
def test_isolation_needs_room_for_one(bad: int) -> None:
    with pytest.raises(ValueError):
        SheddingEventIsolation(max_pending=bad)
