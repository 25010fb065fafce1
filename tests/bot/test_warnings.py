"""Warnings through the real bot and the loopback Bot API: issued by a supervisor in chat, acknowledged by
some workers, the others reminded by the scheduled job and named to the supervisor."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from models.campaigns import AreaWarning, WarningRecipient
from models.tables import Priority
from services import campaigns
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    GRID,
    OTHER_GRID,
    STREET,
    add_supervisor,
    add_worker,
    answer_to,
    area_name,
    button,
    emulator,
    queued,
    world,
)

BOSS, WANG, ZHAO, SUN, OFF, ELSEWHERE = 9601, 9602, 9603, 9604, 9605, 9606
WAIT = 30.0  # seconds: generous, for a loaded test machine; passing runs take well under one


def street_label(db) -> str:  # noqa: ANN001
    return f"{area_name(db.sessions, STREET)} ({STREET})"


async def test_a_warning_is_acknowledged_by_some_and_the_others_are_reminded(world, emulator, db, clock) -> None:
    now = clock.now()
    add_supervisor(db.sessions, now, BOSS, name="Boss Li")
    add_worker(db.sessions, now, WANG, name="Wang")
    add_worker(db.sessions, now, ZHAO, name="Zhao", area_code=OTHER_GRID)
    add_worker(db.sessions, now, SUN, name="Sun")
    add_worker(db.sessions, now, OFF, name="Off duty", on_duty=False)
    add_worker(db.sessions, now, ELSEWHERE, name="Far away", area_code="SH-HP-02-001")
    world.ctx.settings = world.ctx.settings.model_copy(update={"warning_reminder_minutes": 10})
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    users = {uid: emulator.user(uid, first_name=str(uid), language_code="en")
             for uid in (WANG, ZHAO, SUN, OFF, ELSEWHERE)}

    await boss.send_command("warn", "orange Typhoon tonight: check the underpasses.")
    [confirmation] = await boss.wait_inbox(1, timeout=WAIT)
    assert confirmation["text"] == (f"⚠️ 🟠 Orange warning #1 issued to {street_label(db)}.\n"
                                    "3 on-duty workers were told. /warnings shows who has not acknowledged.")
    for uid in (WANG, ZHAO, SUN):
        [message] = await users[uid].wait_inbox(1, timeout=WAIT)
        assert message["text"].startswith(f"⚠️ 🟠 Orange warning for {street_label(db)}\n"
                                          "Typhoon tonight: check the underpasses.\nIssued at ")
        assert message["text"].endswith("Tap Acknowledge once you have read it.")
        assert button(message, "ya:")
    assert users[OFF].inbox == [] and users[ELSEWHERE].inbox == []  # off duty; outside the street
    # Priority delivery: the warning rows jump the queue.
    assert {row.priority for row in queued(db.sessions, WANG)} == {Priority.LIFE_SAFETY}

    for uid in (WANG, ZHAO):
        message = users[uid].inbox[0]
        await users[uid].press(message, button(message, "ya:"))
        await answer_to(emulator, uid, timeout=WAIT)
        await emulator.wait_for(lambda u=uid: "✅ Acknowledged at" in users[u].inbox[0]["text"], timeout=WAIT)
        assert users[uid].inbox[0].get("reply_markup") is None  # the button is gone
    with db.sessions() as s:
        acked = {r.worker_id for r in s.exec(select(WarningRecipient).where(
            WarningRecipient.acknowledged_at.is_not(None)))}
    assert len(acked) == 2

    clock.advance(minutes=9)
    assert await asyncio.to_thread(campaigns.tick, world.ctx) == 0  # not yet due
    clock.advance(minutes=1)
    assert await asyncio.to_thread(campaigns.tick, world.ctx) == 1
    [_, reminder] = await users[SUN].wait_inbox(2, timeout=WAIT)
    assert reminder["text"].startswith("⏰ Reminder 1: you have not acknowledged this warning yet.\n⚠️ 🟠 Orange")
    [_, listing] = await boss.wait_inbox(2, timeout=WAIT)
    assert listing["text"] == (f"⏰ 🟠 Orange warning #1 for {street_label(db)}: 2 of 3 acknowledged.\n"
                               "Not acknowledged yet: Sun. They were reminded.")
    assert len(users[WANG].inbox) == 1 and len(users[ZHAO].inbox) == 1  # who acknowledged is left alone

    await boss.send_command("warnings")
    [*_, answer] = await boss.wait_inbox(3, timeout=WAIT)
    assert "#1 🟠 Orange · SH-HP-01: 2 of 3 acknowledged\nNot acknowledged yet: Sun" in answer["text"]

    # Sun acknowledges the reminder: nobody is reminded again.
    await users[SUN].press(reminder, button(reminder, "ya:"))
    await answer_to(emulator, SUN, timeout=WAIT)
    clock.advance(minutes=10)
    assert await asyncio.to_thread(campaigns.tick, world.ctx) == 0
    with db.sessions() as s:
        warning = s.exec(select(AreaWarning)).one()
    assert warning.next_reminder_at is None and warning.reminders == 1


async def test_a_drill_warning_is_labelled_and_bad_commands_are_explained(world, emulator, db, clock) -> None:
    add_supervisor(db.sessions, clock.now(), BOSS, name="Boss Li", locale="zh_CN")
    add_worker(db.sessions, clock.now(), WANG, name="Wang", locale="zh_CN")
    boss = emulator.user(BOSS, first_name="Li", language_code="zh-hans")
    wang = emulator.user(WANG, first_name="Wang", language_code="zh-hans")

    await boss.send_command("warn", "purple storm")
    [usage] = await boss.wait_inbox(1, timeout=WAIT)
    assert usage["text"].startswith("用法：/warn")
    await boss.send_command("warn", f"drill {GRID} 红 玻璃幕墙演练")
    [message] = await wang.wait_inbox(1, timeout=WAIT)
    assert message["text"].startswith("🧪 【演练】\n⚠️ 🔴 红色预警")
    assert "玻璃幕墙演练" in message["text"]
    [_, confirmation] = await boss.wait_inbox(2, timeout=WAIT)
    assert confirmation["text"].startswith("🧪 【演练】\n")
    await boss.send_command("warn", "SH-XX-99 red nope")
    [*_, refusal] = await boss.wait_inbox(3, timeout=WAIT)
    assert refusal["text"] == "不存在区域SH-XX-99。"
