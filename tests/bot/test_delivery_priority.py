"""Urgent messages first: the sender takes the most urgent due rows first and keeps each chat's order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.delivery import DeliveryLimits, NotificationSender
from bot.emulator import BotApiEmulator
from bot.factory import create_bot
from models.events import Event
from models.tables import Notification, Priority
from services.bus import EventBus
from services.db import transaction
from services.notify import enqueue_text
from sqlmodel import select


def queue(db, clock, chat_id: int, text: str, priority: Priority) -> None:
    with transaction(db.sessions) as s:
        enqueue_text(s, chat_id=chat_id, text=text, now=clock.now(), priority=priority)


def make_sender(db, clock, emu: BotApiEmulator, tmp_path: Path, batch_size: int = 200) -> NotificationSender:
    bot = create_bot(emu.token, api_url=emu.base_url, timeout=10)
    return NotificationSender(bot=bot, sessions=db.sessions, clock=clock, data_dir=tmp_path,
                              limits=DeliveryLimits(), batch_size=batch_size)


async def deliver_all(db, clock, emu: BotApiEmulator, tmp_path: Path, expect: int, batch_size: int,
                      active_chats: int | None = None) -> list[str]:
    sender = make_sender(db, clock, emu, tmp_path, batch_size)
    bot = sender.bot
    if active_chats is not None:
        sender.active_chats = active_chats
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, poll_interval=0.05))
    try:
        await emu.wait_for(lambda: sender.stats.sent >= expect, timeout=60)
    finally:
        stop.set()
        await task
        await bot.session.close()
    return [r.params.get("text") for r in emu.calls("sendMessage") if r.status == 200]


def backlog_and_three_urgent(db, clock) -> None:
    for i in range(40):  # e.g. menus after a restart, each to its own staff chat
        queue(db, clock, 20_000 + i, f"menu {i}", Priority.HOUSEKEEPING)
    queue(db, clock, 30_000, "resident update", Priority.RESIDENT_UPDATE)
    queue(db, clock, 30_001, "work order", Priority.WORK_ORDER)
    queue(db, clock, 30_002, "alarm", Priority.LIFE_SAFETY)


async def test_the_most_urgent_rows_are_claimed_first(db, clock, emulator, tmp_path) -> None:
    backlog_and_three_urgent(db, clock)
    sender = make_sender(db, clock, emulator, tmp_path)
    try:
        claimed = sender._claim(max_chats=4)
    finally:
        await sender.bot.session.close()
    assert [row["payload"]["text"] for row in claimed] == ["alarm", "work order", "resident update", "menu 0"]


async def test_a_work_order_overtakes_a_backlog_of_housekeeping(db, clock, emulator, tmp_path) -> None:
    backlog_and_three_urgent(db, clock)

    # Three chats served at a time (a bot-wide second is about thirty): the menus wait for the urgent ones.
    sent = await deliver_all(db, clock, emulator, tmp_path, expect=43, batch_size=200, active_chats=3)

    assert sorted(sent[:3]) == ["alarm", "resident update", "work order"]
    assert sorted(sent[3:]) == sorted(f"menu {i}" for i in range(40))


async def test_a_new_work_order_goes_out_within_two_seconds_of_sending_behind_2000_menus(
        db, clock, emulator, tmp_path) -> None:
    with transaction(db.sessions) as s:
        for i in range(2000):
            enqueue_text(s, chat_id=40_000 + i, text=f"menu {i}", now=clock.now(), priority=Priority.HOUSEKEEPING)
    sender = make_sender(db, clock, emulator, tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, poll_interval=0.05))
    try:
        await emulator.wait_for(lambda: sender.stats.sent >= 60, timeout=30)
        queue(db, clock, 50_000, "work order", Priority.WORK_ORDER)
        sent_before = len(emulator.calls("sendMessage"))
        sender.wake()
        await emulator.wait_for(lambda: emulator.sent(50_000), timeout=30)
    finally:
        stop.set()
        await task
        await sender.bot.session.close()
    texts = [r.params.get("text") for r in emulator.calls("sendMessage")]
    ahead = texts.index("work order") - sent_before
    # Counted in sends, not seconds: Telegram's bot-wide pace is 30 a second, so 2 s is 60 sends.
    assert ahead <= 60, ahead
    assert emulator.stats["429"] == 0


async def test_one_chat_keeps_its_order_and_ranks_by_its_most_urgent_row(db, clock, emulator, tmp_path) -> None:
    for i in range(10):
        queue(db, clock, 21_000 + i, f"other menu {i}", Priority.HOUSEKEEPING)
    queue(db, clock, 31_000, "old card edit", Priority.HOUSEKEEPING)
    queue(db, clock, 31_000, "new work order", Priority.WORK_ORDER)

    sent = await deliver_all(db, clock, emulator, tmp_path, expect=12, batch_size=3)

    # The worker's chat goes first, in the order its messages were queued; its second message waits only
    # for the chat's own pace (one a second), while other chats use the time.
    assert sent[0] == "old card edit"
    assert [m["text"] for m in emulator.sent(31_000)] == ["old card edit", "new work order"]


class Ping(Event):
    pass


class Alarm(Event):
    pass


def test_the_bus_gives_each_events_rows_the_priority_from_the_table(db, clock) -> None:
    def tell(chat_id: int):
        def render(session, ctx, event) -> None:
            enqueue_text(session, chat_id=chat_id, text=type(event).__name__, now=clock.now())
        return render

    bus = EventBus({Ping: [tell(1)], Alarm: [tell(2)]}, priorities={Alarm: Priority.LIFE_SAFETY})
    with transaction(db.sessions) as s:
        bus.publish(s, None, Ping())
        bus.publish(s, None, Alarm())
        enqueue_text(s, chat_id=3, text="outside any event", now=clock.now())
    with db.sessions() as s:
        rows = {n.payload["text"]: n.priority for n in s.exec(select(Notification))}
    assert rows == {"Ping": Priority.REPLY, "Alarm": Priority.LIFE_SAFETY, "outside any event": Priority.REPLY}
