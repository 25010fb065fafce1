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


async def deliver_all(db, clock, emu: BotApiEmulator, tmp_path: Path, expect: int, batch_size: int) -> list[str]:
    bot = create_bot(emu.token, api_url=emu.base_url, timeout=10)
    sender = NotificationSender(bot=bot, sessions=db.sessions, clock=clock, data_dir=tmp_path,
                                limits=DeliveryLimits(), batch_size=batch_size)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, poll_interval=0.05))
    try:
        await emu.wait_for(lambda: sender.stats.sent >= expect, timeout=60)
    finally:
        stop.set()
        await task
        await bot.session.close()
    return [r.params.get("text") for r in emu.calls("sendMessage") if r.status == 200]


async def test_a_work_order_overtakes_a_backlog_of_housekeeping(db, clock, emulator, tmp_path) -> None:
    for i in range(40):  # e.g. menus after a restart, each to its own staff chat
        queue(db, clock, 20_000 + i, f"menu {i}", Priority.HOUSEKEEPING)
    queue(db, clock, 30_000, "resident update", Priority.RESIDENT_UPDATE)
    queue(db, clock, 30_001, "work order", Priority.WORK_ORDER)
    queue(db, clock, 30_002, "alarm", Priority.LIFE_SAFETY)

    sent = await deliver_all(db, clock, emulator, tmp_path, expect=43, batch_size=5)

    assert sent[:3] == ["alarm", "work order", "resident update"]
    assert sorted(sent[3:]) == sorted(f"menu {i}" for i in range(40))


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
