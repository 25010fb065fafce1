"""The delivery queue through the real aiogram Bot against the emulator with Telegram's limits on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.delivery import DeliveryLimits, NotificationSender, backoff_seconds
from bot.emulator import BotApiEmulator
from bot.factory import create_bot
from models.tables import Notification, NotificationStatus, Person
from services.db import transaction
from services.notify import enqueue_text


def queue(db, clock, messages: list[tuple[int, str]], person_id: int | None = None) -> None:
    with transaction(db.sessions) as s:
        for chat_id, text in messages:
            enqueue_text(s, chat_id=chat_id, text=text, now=clock.now(), person_id=person_id)


def statuses(db) -> dict[str, int]:
    with db.sessions() as s:
        out: dict[str, int] = {}
        for n in s.exec(select(Notification)):
            out[n.status] = out.get(n.status, 0) + 1
        return out


def received_texts(emu: BotApiEmulator, chat_ids) -> list[str]:
    return [m["text"] for chat in chat_ids for m in emu.sent(chat)]


@pytest.fixture
async def make_sender(db, clock, emulator, tmp_path: Path) -> AsyncIterator:
    bots = []

    def factory(timeout: float = 10.0, **limits) -> NotificationSender:
        bot = create_bot(emulator.token, api_url=emulator.base_url, timeout=timeout)
        bots.append(bot)
        return NotificationSender(bot=bot, sessions=db.sessions, clock=clock, data_dir=tmp_path,
                                  limits=DeliveryLimits(**limits))

    yield factory
    for bot in bots:
        await bot.session.close()


async def drain(sender: NotificationSender, emu: BotApiEmulator, expect: int, timeout: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, poll_interval=0.05))
    try:
        await emu.wait_for(lambda: sender.stats.sent >= expect, timeout=timeout)
    finally:
        stop.set()
        await task


async def test_200_messages_to_50_chats_arrive_exactly_once_without_429(db, clock, emulator, make_sender) -> None:
    chats = [10_000 + i for i in range(50)]
    messages = [(chat, f"m{k}-c{chat}") for k in range(4) for chat in chats]
    queue(db, clock, messages)
    sender = make_sender()
    await drain(sender, emulator, expect=200)

    got = received_texts(emulator, chats)
    assert sorted(got) == sorted(text for _, text in messages)  # each exactly once
    for chat in chats:  # and in the order they were queued
        assert [m["text"] for m in emulator.sent(chat)] == [f"m{k}-c{chat}" for k in range(4)]
    assert emulator.stats["429"] == 0
    assert statuses(db) == {NotificationStatus.SENT: 200}


async def test_injected_429_is_waited_out_and_order_kept(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(501, "first"), (501, "second"), (502, "other chat")])
    emulator.inject(method="sendMessage", chat_id=501, kind="429", times=1, retry_after=1)
    sender = make_sender()
    await drain(sender, emulator, expect=3)
    assert [m["text"] for m in emulator.sent(501)] == ["first", "second"]
    assert [m["text"] for m in emulator.sent(502)] == ["other chat"]
    assert sender.stats.waited_429 == 1
    assert statuses(db) == {NotificationStatus.SENT: 3}


async def test_killed_mid_batch_loses_nothing_and_sends_nothing_twice(db, clock, emulator, make_sender) -> None:
    chats = [20_000 + i for i in range(30)]
    messages = [(chat, f"k{k}-c{chat}") for k in range(3) for chat in chats]
    queue(db, clock, messages)
    first = make_sender()
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop, poll_interval=0.05))
    await emulator.wait_for(lambda: first.stats.sent >= 25, timeout=20)
    task.cancel()  # the process is told to die in the middle of a batch
    with pytest.raises(asyncio.CancelledError):
        await task
    delivered_before = len(received_texts(emulator, chats))
    assert 25 <= delivered_before < 90
    with db.sessions() as s:
        assert not s.exec(select(Notification).where(Notification.status == NotificationStatus.SENDING)).all()

    second = make_sender()  # restart
    await drain(second, emulator, expect=90 - delivered_before)
    assert sorted(received_texts(emulator, chats)) == sorted(text for _, text in messages)
    assert statuses(db) == {NotificationStatus.SENT: 90}


async def test_a_sender_taking_over_keeps_the_pace_of_a_chat_the_dead_one_just_wrote_to(
        db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(701, "first")])
    dead = make_sender()
    await drain(dead, emulator, expect=1)  # it wrote to chat 701, then its process died
    queue(db, clock, [(701, "second"), (702, "to another chat")])
    new = make_sender()
    assert await new.take_over() == 0  # nothing was on the wire
    await drain(new, emulator, expect=2)
    # Telegram still counts the dead sender's message: the next one waits out the chat's interval
    # instead of drawing a 429, and another chat is not held back by it.
    assert emulator.stats["429"] == 0 and new.stats.waited_429 == 0
    assert [m["text"] for m in emulator.sent(701)] == ["first", "second"]
    assert [r.params["chat_id"] for r in emulator.calls("sendMessage")] == [701, 702, 701]


async def test_rows_claimed_by_a_crashed_process_are_sent_after_the_lease(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(601, "claimed then crashed"), (602, "also claimed")])
    crashed = make_sender()
    claimed = crashed._claim()  # the process claimed the rows, then died before calling Telegram
    assert len(claimed) == 2
    survivor = make_sender()
    assert await survivor.run_once() == 0  # the lease still holds
    clock.advance(seconds=crashed.lease.total_seconds() + 1)
    await drain(survivor, emulator, expect=2)
    assert [m["text"] for m in emulator.sent(601)] == ["claimed then crashed"]
    assert [m["text"] for m in emulator.sent(602)] == ["also claimed"]


async def test_blocked_user_is_marked_not_retried(db, clock, emulator, make_sender) -> None:
    with transaction(db.sessions) as s:
        s.add(Person(id=7, telegram_user_id=701, roles=["resident"], created_at=clock.now()))
    queue(db, clock, [(701, "you blocked me"), (701, "me too")], person_id=7)
    queue(db, clock, [(702, "fine")])
    emulator.block(701)
    sender = make_sender()
    await drain(sender, emulator, expect=1)
    await emulator.wait_for(lambda: statuses(db).get(NotificationStatus.BLOCKED) == 2, timeout=15)
    assert emulator.sent(701) == []
    assert [m["text"] for m in emulator.sent(702)] == ["fine"]
    with db.sessions() as s:
        assert s.get(Person, 7).blocked_bot_at == clock.now()
    assert await sender.run_once() == 0  # nothing left to retry


async def test_server_errors_are_retried_then_rescheduled_with_backoff(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(801, "eventually")])
    emulator.inject(method="sendMessage", kind="5xx", times=3)
    sender = make_sender(quick_retries=3)
    assert await sender.run_once() == 1
    with db.sessions() as s:
        row = s.exec(select(Notification)).one()
    assert row.status == NotificationStatus.PENDING and row.attempts == 1
    assert row.next_attempt_at == clock.now() + timedelta(seconds=backoff_seconds(1))
    assert emulator.sent(801) == []
    assert await sender.run_once() == 0  # not due yet
    clock.advance(seconds=backoff_seconds(1))
    assert await sender.run_once() == 1
    assert [m["text"] for m in emulator.sent(801)] == ["eventually"]


async def test_a_photo_not_readable_yet_is_retried_later_then_sent_with_its_caption(
        db, clock, emulator, make_sender, tmp_path: Path) -> None:
    import io

    from PIL import Image

    from services.notify import enqueue

    with transaction(db.sessions) as s:  # a shared photo volume that does not show the file yet
        enqueue(s, chat_id=1001, method="sendPhoto", now=clock.now(),
                payload={"photo_path": "orders/site.jpg", "caption": "Work order SH-1"})
    sender = make_sender()
    assert await sender.run_once() == 1
    with db.sessions() as s:
        row = s.exec(select(Notification)).one()
    assert (row.status, row.attempts) == (NotificationStatus.PENDING, 1)
    assert row.last_error.startswith("photo unreadable") and emulator.sent(1001) == []

    (tmp_path / "orders").mkdir()
    Image.new("RGB", (320, 240), (90, 120, 60)).save(buf := io.BytesIO(), format="JPEG")
    (tmp_path / "orders" / "site.jpg").write_bytes(buf.getvalue())
    clock.advance(seconds=backoff_seconds(1))
    assert await sender.run_once() == 1
    [message] = emulator.sent(1001)
    assert message["caption"] == "Work order SH-1" and message["photo"][-1]["width"] == 320
    assert statuses(db) == {NotificationStatus.SENT: 1}


async def test_timeout_is_retried_and_delivered_once(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(901, "slow network")])
    emulator.inject(method="sendMessage", kind="timeout", times=1, delay=3)
    sender = make_sender(timeout=1)
    await drain(sender, emulator, expect=1, timeout=15)
    assert [m["text"] for m in emulator.sent(901)] == ["slow network"]
    assert sender.stats.transient_errors >= 1


async def test_permanent_refusal_is_recorded_and_does_not_block_others(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(1001, "x" * 5000), (1001, "next one"), (1002, "other")])
    sender = make_sender()
    await drain(sender, emulator, expect=2)
    assert [m["text"] for m in emulator.sent(1001)] == ["next one"]
    with db.sessions() as s:
        failed = s.exec(select(Notification).where(Notification.status == NotificationStatus.FAILED)).one()
    assert "too long" in failed.last_error.lower() or "bad request" in failed.last_error.lower()


async def test_attempts_exhausted_marks_failed(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(1101, "never")])
    emulator.inject(method="sendMessage", kind="5xx", times=100)
    sender = make_sender(quick_retries=1, max_attempts=2)
    assert await sender.run_once() == 1
    clock.advance(seconds=backoff_seconds(1))
    assert await sender.run_once() == 1
    with db.sessions() as s:
        row = s.exec(select(Notification)).one()
    assert (row.status, row.attempts) == (NotificationStatus.FAILED, 2)
    assert row.last_error  # the reason stays on the row for whoever looks into it


async def test_one_chats_429_does_not_hold_back_another_chat(db, clock, emulator, make_sender) -> None:
    queue(db, clock, [(511, "told to wait")])
    emulator.inject(method="sendMessage", chat_id=511, kind="429", times=1, retry_after=3)
    sender = make_sender()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop, poll_interval=0.05))
    try:
        await emulator.wait_for(lambda: sender.stats.waited_429 == 1, timeout=10)
        queue(db, clock, [(512, "another chat")])
        sender.wake()
        await emulator.wait_for(lambda: emulator.sent(512), timeout=10)
        assert emulator.sent(511) == []  # chat 511 is still waiting out its retry_after; 512 did not wait
        await emulator.wait_for(lambda: emulator.sent(511), timeout=10)
    finally:
        stop.set()
        await task
    assert [m["text"] for m in emulator.sent(511)] == ["told to wait"]
    assert statuses(db) == {NotificationStatus.SENT: 2}
