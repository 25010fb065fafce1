"""`BotApiEmulator.watch()`: live notices of which chats changed, as the sandbox console uses them."""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from bot.emulator import BotApiEmulator


async def test_users_and_bot_changes_name_their_chat(emu: BotApiEmulator, bot: Bot) -> None:
    li, wang = emu.user(3001, first_name="Li"), emu.user(3002, first_name="Wang")
    with emu.watch() as feed:
        await li.send_text("hello")
        assert await feed.next(1) == {li.id}

        markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="OK", callback_data="ok")]])
        sent = await bot.send_message(wang.id, "order", reply_markup=markup)
        assert await feed.next(1) == {wang.id}

        update = await wang.press(emu.sent(wang.id)[0], "ok")
        assert await feed.next(1) == {wang.id}
        await bot.answer_callback_query(update["callback_query"]["id"], text="taken")
        assert await feed.next(1) == {wang.id}

        await bot.edit_message_text("order (taken)", chat_id=wang.id, message_id=sent.message_id)
        assert await feed.next(1) == {wang.id}
        await bot.delete_message(wang.id, sent.message_id)
        assert await feed.next(1) == {wang.id}

        keyboard = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Share", request_location=True)]])
        await bot.send_message(li.id, "where?", reply_markup=keyboard)
        assert await feed.next(1) == {li.id}


async def test_changes_are_coalesced_and_a_quiet_feed_times_out(emu: BotApiEmulator, bot: Bot) -> None:
    li, wang = emu.user(3011), emu.user(3012)
    with emu.watch() as feed:
        for n in range(5):
            await bot.send_message(li.id, f"m{n}")
        await wang.send_text("hi")
        assert await feed.next(1) == {li.id, wang.id}  # five sends to one chat are one entry
        assert await feed.next(0.05) == set()


async def test_refused_calls_and_other_feeds_are_not_affected(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(3021)
    early = emu.watch()
    with emu.watch() as feed:
        emu.block(li.id)
        status, _ = await emu.call("sendMessage", {"chat_id": li.id, "text": "blocked"})
        assert status == 403
        assert await feed.next(0.05) == set()  # a refused call changed nothing
    emu.unblock(li.id)
    await bot.send_message(li.id, "now")
    assert feed.closed and await feed.next(0.05) == set()  # a closed feed hears nothing
    assert await early.next(1) == {li.id}  # an open feed still does
    early.close()


async def test_a_waiting_reader_wakes_when_the_emulator_stops() -> None:
    emu = await BotApiEmulator(limits=False).start()
    feed = emu.watch()
    reader = asyncio.create_task(feed.next(30))
    await asyncio.sleep(0)  # let the reader start waiting
    await emu.stop()
    assert await asyncio.wait_for(reader, 2) == set()
    assert feed.closed
    assert emu.watch().closed  # a stopped emulator hands out closed feeds
