"""The emulated Bot API as a bot sees it: answers, validation, edits, recording."""

from __future__ import annotations

import aiohttp
import pytest
from PIL import Image
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MenuButtonCommands,
    Message,
    ReplyKeyboardMarkup,
)

from bot.emulator import BotApiEmulator


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data) for text, data in pairs]]
    )


async def raw_call(emu: BotApiEmulator, method: str, *, json=None, data=None, token: str | None = None):
    """A request as any HTTP client would send it, malformed ones included."""
    url = f"{emu.base_url}/bot{token or emu.token}/{method}"
    async with aiohttp.ClientSession() as http, http.post(url, json=json, data=data) as response:
        return response.status, await response.json()


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "onegrid_test_bot")


async def test_send_message_with_inline_keyboard_is_recorded_and_parsed(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(1001, first_name="Li", language_code="zh-hans")

    message = await bot.send_message(li.id, "<b>Case</b> 42 registered", parse_mode="HTML",
                                     reply_markup=keyboard(("Details", "case:42")))

    assert isinstance(message, Message)
    assert message.text == "Case 42 registered"
    assert message.entities[0].type == "bold" and message.entities[0].length == 4
    assert message.chat.id == li.id and message.from_user.id == 123456
    assert message.reply_markup.inline_keyboard[0][0].callback_data == "case:42"
    [recorded] = li.inbox
    assert recorded["message_id"] == message.message_id
    assert recorded["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "case:42"
    call = emu.calls("sendMessage")[-1]
    assert (call.status, call.params["chat_id"]) == (200, li.id)


async def test_wrong_token_is_unauthorized(emu: BotApiEmulator) -> None:
    status, body = await raw_call(emu, "getMe", token="123456:WRONG")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


async def test_unknown_method_is_not_found(emu: BotApiEmulator) -> None:
    status, body = await raw_call(emu, "sendTelepathy", json={"chat_id": 1})
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})


async def test_method_names_are_case_insensitive(emu: BotApiEmulator) -> None:
    status, body = await raw_call(emu, "SENDMESSAGE", json={"chat_id": 5, "text": "hi"})
    assert status == 200 and body["result"]["text"] == "hi"
    assert emu.requests[-1].method == "sendMessage"

    async with aiohttp.ClientSession() as http, http.get(f"{emu.base_url}/bot{emu.token}/getme") as response:
        assert response.status == 200 and (await response.json())["result"]["id"] == 123456
    url = f"{emu.base_url}/bot{emu.token}/sendmessage?chat_id=5&text=by%20query"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert (await response.json())["result"]["text"] == "by query"


@pytest.mark.parametrize(
    ("payload", "description"),
    [
        ({"chat_id": 5}, "Bad Request: message text is empty"),
        ({"text": "hi"}, "Bad Request: chat_id is empty"),
        ({"chat_id": 5, "text": "hi", "colour": "red"}, 'Bad Request: unknown parameter "colour"'),
        ({"chat_id": 5, "text": "x" * 4097}, "Bad Request: message is too long"),
        ({"chat_id": 5, "text": "   "}, "Bad Request: message text is empty"),
        ({"chat_id": 5, "text": "hi", "disable_notification": "maybe"}, "must be of type Boolean"),
        ({"chat_id": 5, "text": "hi", "reply_markup": "{not json"}, "can't parse reply_markup JSON object"),
        ({"chat_id": 5, "text": "a < b", "parse_mode": "HTML"}, "Bad Request: can't parse entities"),
        ({"chat_id": 5, "text": "1.5", "parse_mode": "MarkdownV2"}, "Character '.' is reserved"),
        (
            {"chat_id": 5, "text": "hi",
             "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]}},
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            {"chat_id": 5, "text": "hi", "reply_markup": {"inline_keyboard": [[{"text": "only a label"}]]}},
            "Text buttons are unallowed in the inline keyboard",
        ),
        (
            {"chat_id": 5, "text": "hi",
             "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "a", "url": "https://x.org"}]]}},
            "exactly one of the optional fields",
        ),
        (
            {"chat_id": 5, "text": "hi",
             "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "a", "size": 3}]]}},
            'unknown field "size"',
        ),
        ({"chat_id": 5, "text": "hi", "reply_markup": {"keyboard": "not rows"}}, "can't parse reply_markup"),
    ],
)
async def test_invalid_requests_answer_400_like_telegram(emu: BotApiEmulator, payload, description) -> None:
    status, body = await raw_call(emu, "sendMessage", json=payload)

    assert status == 400 and body["ok"] is False and body["error_code"] == 400
    assert description in body["description"]
    assert emu.sent(5) == []


async def test_form_encoded_requests_are_validated_too(emu: BotApiEmulator) -> None:
    status, body = await raw_call(emu, "sendMessage", data={"chat_id": "five", "text": "hi", "message_thread_id": "x"})
    assert status == 400 and 'parameter "message_thread_id" must be of type Integer' in body["description"]

    status, body = await raw_call(emu, "sendMessage", data={"chat_id": "5", "text": "hi"})
    assert status == 200 and body["result"]["chat"]["id"] == 5


async def test_unions_and_abstract_types_accept_any_fitting_alternative(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(1002, first_name="Li")
    share = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Share location", request_location=True)]],
                                resize_keyboard=True)
    await bot.send_message(li.id, "Where is it?", reply_markup=share)
    commands = [BotCommand(command="report", description="Report a problem")]

    assert await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=li.id), language_code="zh")
    assert await bot.set_chat_menu_button(chat_id=li.id, menu_button=MenuButtonCommands())

    assert emu.reply_keyboard(li.id)["keyboard"][0][0]["request_location"] is True
    assert "reply_markup" not in li.inbox[0]  # only inline keyboards belong to the message
    got = await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=li.id), language_code="zh")
    assert [c.command for c in got] == ["report"]
    assert await bot.get_my_commands() == []
    status, body = await raw_call(emu, "setMyCommands", json={"commands": [], "scope": {"type": "everyone"}})
    assert status == 400 and 'unsupported BotCommandScope type "everyone"' in body["description"]


async def test_callback_data_over_64_bytes_fails_in_aiogram(emu: BotApiEmulator, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(7, "pick", reply_markup=keyboard(("x", "案" * 22)))  # 66 bytes of UTF-8
    assert emu.sent(7) == []


async def test_edits_follow_telegram_rules(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(1003, first_name="Li")
    sent = await bot.send_message(li.id, "Waiting", reply_markup=keyboard(("Accept", "accept")))

    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("Nope", chat_id=li.id, message_id=999)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Waiting", chat_id=li.id, message_id=sent.message_id,
                                    reply_markup=keyboard(("Accept", "accept")))
    edited = await bot.edit_message_text("Accepted", chat_id=li.id, message_id=sent.message_id)

    assert edited.text == "Accepted" and edited.edit_date is not None
    assert li.inbox[0]["text"] == "Accepted" and "reply_markup" not in li.inbox[0]  # omitted markup is removed
    await bot.edit_message_reply_markup(chat_id=li.id, message_id=sent.message_id,
                                        reply_markup=keyboard(("Undo", "undo")))
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=li.id, message_id=sent.message_id,
                                            reply_markup=keyboard(("Undo", "undo")))
    assert li.inbox[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "undo"

    assert await bot.delete_message(li.id, sent.message_id)
    assert li.inbox == []
    assert emu.sent(li.id, include_deleted=True)[0]["deleted"] is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(li.id, sent.message_id)


async def test_photos_documents_and_captions(emu: BotApiEmulator, bot: Bot, png: bytes) -> None:
    li = emu.user(1004, first_name="Li")

    photo = await bot.send_photo(li.id, BufferedInputFile(png, "map.png"), caption="Grid <i>A-7</i>", parse_mode="HTML")
    again = await bot.send_photo(li.id, photo.photo[-1].file_id)
    document = await bot.send_document(li.id, BufferedInputFile(b"id,status\n1,open\n", "cases.csv"))
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=li.id, message_id=photo.message_id)
    recaptioned = await bot.edit_message_caption(chat_id=li.id, message_id=photo.message_id, caption="Grid A-8")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(li.id, photo.photo[-1].file_id, caption="c" * 1025)

    assert (photo.photo[-1].width, photo.photo[-1].height) == (640, 480)
    assert [p.width for p in photo.photo] == sorted(p.width for p in photo.photo)
    for size in photo.photo[:-1]:  # each thumbnail is a picture of the size it claims
        got = await bot.download(size.file_id)
        with Image.open(got) as thumb:
            assert (thumb.format, thumb.size) == ("JPEG", (size.width, size.height))
    assert photo.caption == "Grid A-7" and photo.caption_entities[0].type == "italic"
    assert again.photo[-1].file_unique_id == photo.photo[-1].file_unique_id
    assert (document.document.file_name, document.document.mime_type) == ("cases.csv", "text/csv")
    assert recaptioned.caption == "Grid A-8"
    assert await bot.download(document.document.file_id) is not None
    assert (await bot.download(document.document.file_id)).read() == b"id,status\n1,open\n"


async def test_a_photo_with_an_html_caption_and_buttons_is_edited_through_its_caption(
        emu: BotApiEmulator, bot: Bot, png: bytes) -> None:
    """The shape of a work order: photo, HTML caption with a link, callback and URL buttons; then edits."""
    li = emu.user(1006, first_name="Li")
    buttons = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text="Accept", callback_data="wo:a:1")],
        [InlineKeyboardButton(text="Navigate", url="https://uri.amap.com/marker?position=121.49,31.24")]])

    order = await bot.send_photo(li.id, BufferedInputFile(png, "site.png"), parse_mode="HTML", reply_markup=buttons,
                                 caption='Order <b>1</b> &amp; more\n<a href="https://example.org/?a=1&amp;b=2">map</a>')
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.edit_message_caption(chat_id=li.id, message_id=order.message_id, caption="<b>Accepted", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.edit_message_caption(chat_id=li.id, message_id=order.message_id, caption="<b>x</b>" * 1025,
                                       parse_mode="HTML")
    accepted = await bot.edit_message_caption(chat_id=li.id, message_id=order.message_id, parse_mode="HTML",
                                              caption="<i>Accepted</i>", reply_markup=keyboard(("Complete", "wt:c:1")))
    text = await bot.send_message(li.id, "a text order")
    with pytest.raises(TelegramBadRequest, match="there is no caption in the message to edit"):
        await bot.edit_message_caption(chat_id=li.id, message_id=text.message_id, caption="x")
    taken = await bot.edit_message_caption(chat_id=li.id, message_id=order.message_id, caption="Taken by another")

    assert order.caption == "Order 1 & more\nmap"
    assert [e.type for e in order.caption_entities] == ["bold", "text_link"]
    assert order.caption_entities[1].url == "https://example.org/?a=1&b=2"
    assert order.reply_markup.inline_keyboard[1][0].url.startswith("https://uri.amap.com/")
    assert accepted.caption == "Accepted" and accepted.caption_entities[0].type == "italic"
    assert accepted.reply_markup.inline_keyboard[0][0].callback_data == "wt:c:1"
    assert accepted.photo[-1].file_unique_id == order.photo[-1].file_unique_id  # the photo stays
    assert (taken.caption, taken.reply_markup) == ("Taken by another", None)  # no markup: the buttons go
    [stored, _text] = li.inbox
    assert (stored["caption"], "reply_markup" in stored, "photo" in stored) == ("Taken by another", False, True)


async def test_locations_venues_and_chat_actions(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(1005, first_name="Li")

    live = await bot.send_location(li.id, 31.2304, 121.4737, horizontal_accuracy=15, live_period=900)
    venue = await bot.send_venue(li.id, 31.24, 121.49, "Bund grid office", "Zhongshan East 1st Rd")
    moved = await bot.edit_message_live_location(latitude=31.2310, longitude=121.4740,
                                                 chat_id=li.id, message_id=live.message_id)
    assert await bot.send_chat_action(li.id, "find_location")
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(li.id, "dancing")

    assert live.location.live_period == 900 and live.location.horizontal_accuracy == 15
    assert moved.location.latitude == pytest.approx(31.2310)
    assert venue.venue.title == "Bund grid office" and venue.location.longitude == pytest.approx(121.49)
    assert len(li.inbox) == 2


async def test_unimplemented_methods(emu: BotApiEmulator, bot: Bot) -> None:
    assert await bot.set_my_description("Grid management")  # returns True in the spec
    assert await bot.close() and await bot.log_out()
    status, body = await raw_call(emu, "sendDice", json={"chat_id": 5})
    assert status == 501 and "sendDice" in body["description"]


async def test_messages_in_forum_topics_keep_their_thread(emu: BotApiEmulator, bot: Bot) -> None:
    grid = emu.group(-1001234567890, "Grid A-7 workers", is_forum=True)

    message = await bot.send_message(grid.id, "New case in topic", message_thread_id=42)

    assert message.message_thread_id == 42 and message.is_topic_message
    assert grid.inbox[0]["message_thread_id"] == 42
    assert emu.calls("sendMessage")[-1].params["message_thread_id"] == 42


async def test_replies_name_the_message_replied_to(emu: BotApiEmulator, bot: Bot) -> None:
    li = emu.user(1006, first_name="Li")
    update = await li.send_text("Streetlight broken on Nanjing Rd")

    reply = await bot.send_message(li.id, "Got it", reply_to_message_id=update["message"]["message_id"])

    assert reply.reply_to_message.text == "Streetlight broken on Nanjing Rd"
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(li.id, "Got it", reply_to_message_id=999)
