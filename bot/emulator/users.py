"""Fake Telegram users and groups that talk to the bot through the emulator.

What callers may rely on:
- Every action stores the user's message in the chat (so the bot can reply to, forward or
  delete it, and ids stay in step with the bot's messages) and queues one Update, which the
  method returns as a dict; the bot receives it by getUpdates or its webhook.
- A user's private chat id is the user id. Actions take `chat=` (a `FakeGroup` or a chat id)
  to act in a group instead, and `message_thread_id=` for a forum topic.
- Text gets the entities Telegram would detect (commands, URLs, mentions, hashtags).
- `press()` refuses (LookupError) a callback_data that no inline button of that message has,
  judging by the message as it is now, after the bot's edits.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from typing import TYPE_CHECKING, Any

from bot.emulator.formatting import detect_entities, utf16_len
from bot.emulator.store import CONTENT_FIELDS, ChatState

if TYPE_CHECKING:
    from bot.emulator.server import BotApiEmulator

_callback_ids = itertools.count(1)


def _chat_instance(chat_id: int) -> str:
    return str(int.from_bytes(hashlib.sha256(str(chat_id).encode()).digest()[:7], "big"))


class FakeUser:
    """A Telegram user; its private chat with the bot has id == user id."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        is_premium: bool | None = None,
    ) -> None:
        if user_id <= 0:
            raise ValueError("a user id must be positive")
        self._emu = emulator
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.is_premium = is_premium
        self.register()

    def register(self) -> None:
        """(Re)store this user's private chat with the current name fields."""
        self._emu.store.register(self.private_chat)

    def as_user(self) -> dict[str, Any]:
        """The Bot API `User` object for this user."""
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code", "is_premium"):
            value = getattr(self, key)
            if value is not None:
                user[key] = value
        return user

    @property
    def private_chat(self) -> dict[str, Any]:
        """The Bot API `Chat` object of the private chat with the bot."""
        chat: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat

    @property
    def inbox(self) -> list[dict[str, Any]]:
        """What the bot sent to this user's private chat, as it looks now (see `sent`)."""
        return self._emu.sent(self.id)

    async def wait_inbox(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until the private chat holds at least `count` bot messages; returns them."""
        await self._emu.wait_for(lambda: len(self.inbox) >= count, timeout=timeout, chat_id=self.id)
        return self.inbox

    # -- sending -----------------------------------------------------------------------------

    async def send_text(
        self, text: str, *, chat: Any = None, message_thread_id: int | None = None, reply_to: dict | None = None
    ) -> dict[str, Any]:
        """Send a text message; returns the queued Update."""
        content: dict[str, Any] = {"text": text}
        entities = detect_entities(text)
        if entities:
            content["entities"] = entities
        return self._post(content, chat, message_thread_id, reply_to)

    async def send_command(
        self,
        command: str,
        args: str | None = None,
        *,
        chat: Any = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send "/command args" with a bot_command entity over the command."""
        if not command.startswith("/"):
            command = "/" + command
        text = command if not args else f"{command} {args}"
        command_entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
        entities = [command_entity, *detect_entities(text, [command_entity])]
        return self._post({"text": text, "entities": entities}, chat, message_thread_id, None)

    async def send_photo(
        self,
        data: bytes,
        caption: str | None = None,
        *,
        file_unique_id: str | None = None,
        chat: Any = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a photo; the bytes are kept so getFile and downloads return them."""
        content: dict[str, Any] = {"photo": self._emu.files.add_photo(data, unique_id=file_unique_id)}
        content.update(_caption(caption))
        return self._post(content, chat, message_thread_id, None)

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
        *,
        file_unique_id: str | None = None,
        chat: Any = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a file as a document."""
        stored = self._emu.files.add_document(data, file_name, mime_type, unique_id=file_unique_id)
        content: dict[str, Any] = {"document": stored.as_document()}
        content.update(_caption(caption))
        return self._post(content, chat, message_thread_id, None)

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        horizontal_accuracy: float | None = None,
        live_period: int | None = None,
        *,
        heading: int | None = None,
        chat: Any = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Share a location; with `live_period` (seconds) a live location."""
        location = _location(latitude, longitude, horizontal_accuracy, live_period, heading)
        return self._post({"location": location}, chat, message_thread_id, None)

    async def edit_live_location(
        self,
        message: dict[str, Any],
        latitude: float,
        longitude: float,
        horizontal_accuracy: float | None = None,
        *,
        heading: int | None = None,
    ) -> dict[str, Any]:
        """Move a live location sent earlier (its Update or Message); queues `edited_message`."""
        stored = self._stored(message)
        location = stored.get("location")
        if stored["from"]["id"] != self.id or not location or "live_period" not in location:
            raise ValueError("only the user's own live location can be edited")
        stored["location"] = _location(latitude, longitude, horizontal_accuracy, location["live_period"], heading)
        stored["edit_date"] = self._emu.store.now()
        return self._emu.queue_update("edited_message", copy.deepcopy(stored))

    async def send_venue(
        self,
        latitude: float,
        longitude: float,
        title: str,
        address: str,
        *,
        foursquare_id: str | None = None,
        foursquare_type: str | None = None,
        google_place_id: str | None = None,
        google_place_type: str | None = None,
        chat: Any = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Share a venue (a message with both `venue` and `location`)."""
        location = _location(latitude, longitude)
        venue: dict[str, Any] = {"location": location, "title": title, "address": address}
        for key, value in (
            ("foursquare_id", foursquare_id),
            ("foursquare_type", foursquare_type),
            ("google_place_id", google_place_id),
            ("google_place_type", google_place_type),
        ):
            if value is not None:
                venue[key] = value
        return self._post({"venue": venue, "location": dict(location)}, chat, message_thread_id, None)

    async def send_contact(
        self,
        phone_number: str,
        first_name: str | None = None,
        last_name: str | None = None,
        *,
        own: bool = True,
        chat: Any = None,
    ) -> dict[str, Any]:
        """Share a contact; `own=True` (a "share my phone" button) sets contact.user_id."""
        contact: dict[str, Any] = {"phone_number": phone_number, "first_name": first_name or self.first_name}
        if last_name:
            contact["last_name"] = last_name
        if own:
            contact["user_id"] = self.id
        return self._post({"contact": contact}, chat, None, None)

    async def forward(
        self,
        message: dict[str, Any],
        *,
        from_user: FakeUser | dict[str, Any] | str | None = None,
        chat: Any = None,
    ) -> dict[str, Any]:
        """Forward `message` (any Message dict) to the bot; the copy carries `forward_origin`.

        `from_user` names the original author: a FakeUser or User dict ("user" origin), or a
        name string (a "hidden_user" origin). By default the author is the message's `from`,
        or its chat for a channel post.
        """
        date = message.get("date", self._emu.store.now())
        origin: dict[str, Any]
        if isinstance(from_user, str):
            origin = {"type": "hidden_user", "date": date, "sender_user_name": from_user}
        elif from_user is not None:
            user = from_user.as_user() if isinstance(from_user, FakeUser) else dict(from_user)
            origin = {"type": "user", "date": date, "sender_user": user}
        elif message.get("chat", {}).get("type") == "channel":
            origin = {"type": "channel", "date": date, "chat": message["chat"], "message_id": message["message_id"]}
        elif "from" in message:
            origin = {"type": "user", "date": date, "sender_user": message["from"]}
        else:
            raise ValueError("cannot tell who wrote the message; pass from_user")
        content = {k: copy.deepcopy(v) for k, v in message.items() if k in CONTENT_FIELDS}
        content["forward_origin"] = origin
        return self._post(content, chat, None, None)

    async def press(self, message: dict[str, Any], callback_data: str) -> dict[str, Any]:
        """Press the inline button with `callback_data` under a message; queues a callback_query."""
        stored = self._stored(message)
        rows = (stored.get("reply_markup") or {}).get("inline_keyboard", [])
        available = [button.get("callback_data") for row in rows for button in row if "callback_data" in button]
        if callback_data not in available:
            raise LookupError(
                f"message {stored['message_id']} in chat {stored['chat']['id']} has no button "
                f"with callback_data {callback_data!r}; it has {available}"
            )
        query_id = str(next(_callback_ids) * 1_000_003 + self.id)
        self._emu.callback_queries[query_id] = {
            "user_id": self.id,
            "data": callback_data,
            "chat_id": stored["chat"]["id"],
            "message_id": stored["message_id"],
            "answered": False,
        }
        query = {
            "id": query_id,
            "from": self.as_user(),
            "message": copy.deepcopy(stored),
            "chat_instance": _chat_instance(stored["chat"]["id"]),
            "data": callback_data,
        }
        return self._emu.queue_update("callback_query", query)

    # -- helpers -----------------------------------------------------------------------------

    def _chat_state(self, chat: Any) -> ChatState:
        if chat is None:
            return self._emu.store.register(self.private_chat)
        if isinstance(chat, FakeGroup):
            return self._emu.store.chats[chat.id]
        return self._emu.store.chat(chat)

    def _stored(self, message: dict[str, Any]) -> dict[str, Any]:
        """The live stored message for a Message dict, or an Update dict holding one."""
        for kind in ("message", "edited_message"):
            if isinstance(message.get(kind), dict):
                message = message[kind]
        stored = self._emu.store.get(message["chat"]["id"], message["message_id"])
        if stored is None:
            raise LookupError(f"message {message['message_id']} in chat {message['chat']['id']} does not exist")
        return stored

    def _post(
        self, content: dict[str, Any], chat: Any, thread_id: int | None, reply_to: dict[str, Any] | None
    ) -> dict[str, Any]:
        state = self._chat_state(chat)
        replied = self._stored(reply_to) if reply_to is not None else None
        stored = self._emu.store.add_message(state, self.as_user(), content, thread_id=thread_id, reply_to=replied)
        return self._emu.queue_update("message", copy.deepcopy(stored))

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"


class FakeGroup:
    """A group or supergroup (id < 0) the bot is in; users act in it via `from_user`."""

    def __init__(
        self, emulator: BotApiEmulator, chat_id: int, title: str, *, chat_type: str | None = None,
        is_forum: bool = False, username: str | None = None,
    ) -> None:
        if chat_id >= 0:
            raise ValueError("a group chat id must be negative")
        self._emu = emulator
        self.id = chat_id
        self.title = title
        self.type = chat_type or ("supergroup" if str(chat_id).startswith("-100") or is_forum else "group")
        self.is_forum = is_forum
        self.username = username
        emulator.store.register(self.chat)

    @property
    def chat(self) -> dict[str, Any]:
        """The Bot API `Chat` object."""
        chat: dict[str, Any] = {"id": self.id, "type": self.type, "title": self.title}
        if self.is_forum:
            chat["is_forum"] = True
        if self.username:
            chat["username"] = self.username
        return chat

    @property
    def inbox(self) -> list[dict[str, Any]]:
        """What the bot sent to this group."""
        return self._emu.sent(self.id)

    async def send_text(
        self, from_user: FakeUser, text: str, *, message_thread_id: int | None = None, reply_to: dict | None = None
    ) -> dict[str, Any]:
        return await from_user.send_text(text, chat=self, message_thread_id=message_thread_id, reply_to=reply_to)

    async def send_command(
        self, from_user: FakeUser, command: str, args: str | None = None, *, message_thread_id: int | None = None
    ) -> dict[str, Any]:
        return await from_user.send_command(command, args, chat=self, message_thread_id=message_thread_id)

    async def send_photo(
        self, from_user: FakeUser, data: bytes, caption: str | None = None, *, message_thread_id: int | None = None
    ) -> dict[str, Any]:
        return await from_user.send_photo(data, caption, chat=self, message_thread_id=message_thread_id)

    def __repr__(self) -> str:
        return f"FakeGroup(id={self.id}, title={self.title!r})"


def _caption(caption: str | None) -> dict[str, Any]:
    if not caption:
        return {}
    result: dict[str, Any] = {"caption": caption}
    entities = detect_entities(caption)
    if entities:
        result["caption_entities"] = entities
    return result


def _location(
    latitude: float,
    longitude: float,
    horizontal_accuracy: float | None = None,
    live_period: int | None = None,
    heading: int | None = None,
) -> dict[str, Any]:
    location: dict[str, Any] = {"latitude": float(latitude), "longitude": float(longitude)}
    if horizontal_accuracy is not None:
        location["horizontal_accuracy"] = float(horizontal_accuracy)
    if live_period is not None:
        location["live_period"] = int(live_period)
    if heading is not None:
        location["heading"] = int(heading)
    return location
