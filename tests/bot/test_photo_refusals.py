"""Bad pictures sent to the bot: decompression bombs under the pixel cap, damaged HEIC (issue 13, items 3, 4).

The residents get the refusal in their own language and nothing is stored; the memory side of the bomb
is measured in tests/unit/test_photo_bombs.py.
"""

from __future__ import annotations

import asyncio

from sqlmodel import select

from models.tables import Photo
from tests.bot.resident_kit import (
    Resident,
    buttons,
    make_person,
    press_data_contains,
    resident_app,  # noqa: F401 - fixture
    settings_overrides,  # noqa: F401 - fixture
)
from tests.unit.test_photo_bombs import rgba_bomb, valid_heic

TOO_MANY_PIXELS = {"en": "This picture has too many pixels. Please send an ordinary photo.",
                   "zh_CN": "这张图片像素过多，请发送普通照片。"}


async def _to_photo_step(resident: Resident, emulator) -> None:  # noqa: ANN001
    mark = resident.last_id()
    await resident.user.send_command("/report")
    menu = await resident.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await press_data_contains(resident, menu, ":kind:environment")

    def current() -> dict:
        return next(m for m in resident.messages() if m["message_id"] == menu["message_id"])

    await emulator.wait_for(lambda: ":cat:exposed_garbage" in str(current().get("reply_markup")))
    await press_data_contains(resident, menu, ":cat:exposed_garbage")
    await resident.expect("📷", after=menu["message_id"] - 1)


async def test_three_bombs_sent_at_once_are_refused_in_each_senders_language(resident_app, emulator, db) -> None:
    people = [(5301, "en"), (5302, "zh_CN"), (5303, "en")]
    residents = []
    for user_id, locale in people:
        make_person(db, user_id, locale=locale)
        residents.append(Resident(emulator.user(user_id, f"R{user_id}", language_code=locale[:2]), emulator))
    for resident in residents:
        await _to_photo_step(resident, emulator)
    marks = [r.last_id() for r in residents]
    bomb = rgba_bomb()  # 7000 × 7000 RGBA in ~190 KB, under the 50 MP cap
    await asyncio.gather(*(r.user.send_document(bomb, "bomb.png", "image/png") for r in residents))
    for resident, mark, (_uid, locale) in zip(residents, marks, people, strict=True):
        refusal = await resident.expect(TOO_MANY_PIXELS[locale], after=mark, timeout=30)
        assert refusal["text"] == TOO_MANY_PIXELS[locale]
    with db.sessions() as s:
        assert s.exec(select(Photo)).all() == []


async def test_a_damaged_heic_gets_the_could_not_read_answer(resident_app, emulator, db) -> None:
    make_person(db, 5311)
    kim = Resident(emulator.user(5311, "Kim", language_code="en"), emulator)
    await _to_photo_step(kim, emulator)
    damaged = valid_heic()[:-100]  # its coded picture cut short: pillow-heif raises ValueError while decoding
    mark = kim.last_id()
    await kim.user.send_document(damaged, "IMG_0001.HEIC", "image/heic")
    answer = await kim.expect("picture", after=mark)
    assert answer["text"] == "This is not a picture I can read. Please send a JPEG, PNG, WebP or HEIC image."
    with db.sessions() as s:
        assert s.exec(select(Photo)).all() == []
