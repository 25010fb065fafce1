"""Fake users talking to a real aiogram Dispatcher that long-polls the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramConflictError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.emulator import BotApiEmulator


def ping_router() -> Router:
    router = Router()

    @router.message(Command("ping"))
    async def ping(message: Message) -> None:
        markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Again", callback_data="again")]])
        await message.answer("pong", reply_markup=markup)

    @router.callback_query(F.data == "again")
    async def again(callback: CallbackQuery) -> None:
        await callback.answer("pinged again")
        await callback.message.edit_text("pong (again)")

    @router.message(F.photo)
    async def photo(message: Message) -> None:
        await message.answer(f"photo {message.photo[-1].width}x{message.photo[-1].height}")

    return router


@pytest.fixture
async def polling(bot: Bot) -> AsyncIterator[Dispatcher]:
    dp = Dispatcher()
    dp.include_router(ping_router())
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False))
    yield dp
    await dp.stop_polling()
    await task


async def test_ping_pong_and_inline_button_through_the_dispatcher(emu: BotApiEmulator, polling: Dispatcher) -> None:
    li = emu.user(2001, first_name="Li", language_code="zh-hans")

    await li.send_command("/ping")
    [pong] = await li.wait_inbox(1)
    assert pong["text"] == "pong"

    update = await li.press(pong, "again")
    await emu.wait_for(lambda: li.inbox[0]["text"] == "pong (again)", chat_id=li.id)

    [answer] = emu.callback_answers
    assert (answer["callback_query_id"], answer["text"], answer["user_id"]) == (
        update["callback_query"]["id"], "pinged again", li.id)
    assert "reply_markup" not in li.inbox[0]
    with pytest.raises(LookupError, match="no button"):
        await li.press(li.inbox[0], "again")  # the edit removed the keyboard


async def test_user_photo_reaches_the_handler_and_downloads_unchanged(
    emu: BotApiEmulator, bot: Bot, polling: Dispatcher, png: bytes
) -> None:
    li = emu.user(2002, first_name="Li")

    update = await li.send_photo(png, caption="Overflowing bin")
    [reply] = await li.wait_inbox(1)

    assert reply["text"] == "photo 640x480"
    largest = update["message"]["photo"][-1]
    downloaded = await bot.download(largest["file_id"])
    assert downloaded.read() == png
    file = await bot.get_file(largest["file_id"])
    assert file.file_unique_id == largest["file_unique_id"] and file.file_size == len(png)
    same_again = await li.send_photo(png)
    assert same_again["message"]["photo"][-1]["file_unique_id"] == largest["file_unique_id"]
    assert same_again["message"]["photo"][-1]["file_id"] != largest["file_id"]


async def test_updates_are_confirmed_by_offset(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(2003, first_name="Li")
    await li.send_text("one")
    await li.send_text("two")

    first = await bot.get_updates(timeout=0)
    again = await bot.get_updates(timeout=0)
    after = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)

    assert [u.message.text for u in first] == ["one", "two"]
    assert [u.update_id for u in again] == [u.update_id for u in first]  # not confirmed yet
    assert after == []
    assert (await bot.get_updates(limit=1, timeout=0)) == []


async def test_long_poll_returns_as_soon_as_an_update_arrives(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(2004, first_name="Li")
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await emu.wait_for(lambda: emu.calls("getUpdates"))

    loop = asyncio.get_running_loop()
    started = loop.time()
    await li.send_text("anyone there?")
    updates = await poll

    assert loop.time() - started < 1.0
    assert [u.message.text for u in updates] == ["anyone there?"]


async def test_a_newer_poll_ends_an_older_one_with_conflict(emu: BotApiEmulator, bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await emu.wait_for(lambda: emu.calls("getUpdates"))

    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await older


async def test_forwarded_message_carries_forward_origin(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(2005, first_name="Li")
    wang = emu.user(2006, first_name="Wang", username="wang_grid")
    notice = await bot.send_message(wang.id, "Water cut 14:00-16:00")

    await li.forward(emu.sent(wang.id)[0], from_user=wang)
    await li.forward({"text": "rumour", "date": 1_700_000_000}, from_user="Anonymous")
    await li.forward(emu.sent(wang.id)[0])
    updates = await bot.get_updates(timeout=0)

    by_user, hidden, by_bot = (u.message for u in updates)
    assert by_user.forward_origin.type == "user" and by_user.forward_origin.sender_user.id == wang.id
    assert by_user.text == "Water cut 14:00-16:00"
    assert by_user.forward_origin.date == notice.date
    assert hidden.forward_origin.type == "hidden_user" and hidden.forward_origin.sender_user_name == "Anonymous"
    assert by_bot.forward_origin.sender_user.is_bot


async def test_locations_venues_documents_and_groups(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(2007, first_name="Li", username="li_resident")
    grid = emu.group(-100777, "Grid A-7", is_forum=True)

    live = await li.send_location(31.2304, 121.4737, horizontal_accuracy=20, live_period=600)
    await li.edit_live_location(live, 31.2310, 121.4741)
    await li.send_venue(31.24, 121.49, "People's Square", "Huangpu")
    await li.send_document(b"%PDF-1.4 report", "report.pdf", "application/pdf")
    await grid.send_text(li, "Pipe burst at gate 3", message_thread_id=9)
    await grid.send_command(li, "/status@onegrid_test_bot", "A-7")
    await li.send_contact("+86 138 0000 0000")
    updates = await bot.get_updates(timeout=0)

    kinds = [u.event_type for u in updates]
    assert kinds == ["message", "edited_message", "message", "message", "message", "message", "message"]
    first, edited, venue, document, topic, command, contact = updates
    assert first.message.location.live_period == 600
    assert edited.edited_message.location.latitude == pytest.approx(31.2310)
    assert edited.edited_message.message_id == first.message.message_id and edited.edited_message.edit_date
    assert venue.message.venue.title == "People's Square" and venue.message.location is not None
    assert document.message.document.mime_type == "application/pdf"
    assert (await bot.download(document.message.document.file_id)).read() == b"%PDF-1.4 report"
    assert topic.message.chat.type == "supergroup" and topic.message.message_thread_id == 9
    assert topic.message.is_topic_message and topic.message.from_user.username == "li_resident"
    assert command.message.entities[0].type == "bot_command"
    assert command.message.text == "/status@onegrid_test_bot A-7"
    assert contact.message.contact.user_id == li.id and contact.message.contact.phone_number.startswith("+86")


async def test_wait_for_reports_what_the_chat_got(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(2008, first_name="Li")
    await bot.send_message(li.id, "Case 7 closed")

    with pytest.raises(TimeoutError, match="Case 7 closed"):
        await emu.wait_for(lambda: len(li.inbox) >= 2, timeout=0.1, chat_id=li.id)
