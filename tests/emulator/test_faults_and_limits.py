"""Injected faults and Telegram's flood limits, as aiogram surfaces them."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.emulator import BotApiEmulator
from tests.emulator.conftest import BotFactory, ManualClock


async def test_injected_429_carries_retry_after(emu: BotApiEmulator, bot: Bot) -> None:
    emu.inject(method="sendMessage", chat_id=11, kind="429", retry_after=3)

    await bot.send_message(12, "other chat is fine")
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(11, "hello")
    await bot.send_message(11, "hello")  # times=1: the fault is used up

    assert raised.value.retry_after == 3
    assert "Too Many Requests: retry after 3" in str(raised.value)
    assert [m["text"] for m in emu.sent(11)] == ["hello"]
    assert (emu.stats["429_injected"], emu.stats["429"]) == (1, 0)


async def test_injected_5xx_is_a_server_error(emu: BotApiEmulator, bot: Bot) -> None:
    emu.inject(kind="5xx", times=2)

    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Bad Gateway"):
            await bot.send_message(13, "hello")

    assert emu.sent(13) == []
    assert (await bot.get_me()).id == 123456


async def test_injected_403_and_blocked_chats_are_forbidden(emu: BotApiEmulator, bot: Bot) -> None:
    emu.inject(method="sendPhoto", kind="403")
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_photo(14, "https://example.org/a.jpg")

    emu.block(15)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(15, "are you there?")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(15, "still blocked")
    emu.unblock(15)
    await bot.send_message(15, "welcome back")

    assert [m["text"] for m in emu.sent(15)] == ["welcome back"]
    assert emu.sent(14) == []
    assert emu.stats["403_blocked"] == 2


async def test_injected_timeout_is_a_network_error_and_not_delivered(
    emu: BotApiEmulator, make_bot: BotFactory
) -> None:
    impatient = await make_bot(emu, timeout=0.3)
    emu.inject(method="sendMessage", kind="timeout")

    with pytest.raises(TelegramNetworkError, match="timeout"):
        await impatient.send_message(16, "slow network")
    await impatient.send_message(16, "fast again")

    assert [m["text"] for m in emu.sent(16)] == ["fast again"]
    assert emu.calls("sendMessage")[0].fault == "timeout"


async def test_stop_does_not_wait_for_held_requests(make_bot: BotFactory) -> None:
    emulator = await BotApiEmulator(limits=False).start()
    bot = await make_bot(emulator, timeout=30)
    emulator.inject(kind="timeout", delay=30)
    held = asyncio.create_task(bot.send_message(17, "held"))
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await emulator.wait_for(lambda: len(emulator.requests) == 2)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await emulator.stop()

    assert loop.time() - started < 2.0
    results = await asyncio.gather(held, poll, return_exceptions=True)
    assert emulator.sent(17) == []
    assert any(isinstance(r, Exception) for r in results)


async def test_two_sends_to_one_chat_back_to_back(make_bot: BotFactory, manual_clock: ManualClock) -> None:
    async with BotApiEmulator(limits=True, now=manual_clock) as emulator:
        bot = await make_bot(emulator)
        await bot.send_message(21, "first")
        with pytest.raises(TelegramRetryAfter) as raised:
            await bot.send_message(21, "second")
        manual_clock.advance(0.95)  # within the 60 ms jitter tolerance of a second
        await bot.send_message(21, "second")

    assert raised.value.retry_after == 1
    assert [m["text"] for m in emulator.sent(21)] == ["first", "second"]
    assert emulator.stats["429"] == 1


async def test_31_chats_within_a_second(make_bot: BotFactory, manual_clock: ManualClock) -> None:
    async with BotApiEmulator(limits=True, now=manual_clock) as emulator:
        bot = await make_bot(emulator)
        refused = []
        for chat in range(100, 131):
            manual_clock.advance(0.01)
            try:
                await bot.send_message(chat, "broadcast")
            except TelegramRetryAfter as error:
                refused.append((chat, error.retry_after))
        manual_clock.advance(0.75)  # the first message of the window is now over 1 s old
        await bot.send_message(130, "broadcast")

    assert refused == [(130, 1)]
    assert emulator.stats["429"] == 1
    assert sum(len(emulator.sent(chat)) for chat in range(100, 131)) == 31


async def test_21_messages_to_a_group_within_a_minute(make_bot: BotFactory, manual_clock: ManualClock) -> None:
    async with BotApiEmulator(limits=True, now=manual_clock) as emulator:
        grid = emulator.group(-100500, "Grid B-2 workers")
        bot = await make_bot(emulator)
        for n in range(20):
            await bot.send_message(grid.id, f"alert {n}")
            manual_clock.advance(2.0)  # 20 messages in 40 s
        with pytest.raises(TelegramRetryAfter) as raised:
            await bot.send_message(grid.id, "alert 20")
        manual_clock.advance(raised.value.retry_after)
        await bot.send_message(grid.id, "alert 20")

    assert raised.value.retry_after == 20  # the first alert leaves the 60 s window at t=60
    assert len(grid.inbox) == 21
    assert emulator.stats["429"] == 1


async def test_limits_apply_only_to_message_sending_methods(make_bot: BotFactory, manual_clock: ManualClock) -> None:
    async with BotApiEmulator(limits=True, now=manual_clock) as emulator:
        bot = await make_bot(emulator)
        sent = await bot.send_message(22, "case 1")
        await bot.send_chat_action(22, "typing")
        await bot.edit_message_text("case 1 (updated)", chat_id=22, message_id=sent.message_id)
        for _ in range(3):
            await bot.get_me()

    assert emulator.stats["429"] == 0
