"""Chats and the messages in them, as the emulated Telegram remembers them.

What callers may rely on:
- Message ids are per chat and shared by the bot's and the users' messages, starting at 1.
- Stored messages are the Bot API `Message` JSON; edits change them in place, deletions move
  them aside (still visible with `include_deleted=True`, flagged `"deleted": True`).
- Unknown chats are created on first use (a private chat for id > 0, a group for id < 0)
  unless the store is strict, in which case they answer "Bad Request: chat not found".
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.emulator.errors import bad_request

# Message fields that are content (copied by forwardMessage/copyMessage), not metadata.
CONTENT_FIELDS = (
    "text", "entities", "link_preview_options", "animation", "audio", "document", "photo",
    "sticker", "video", "video_note", "voice", "caption", "caption_entities",
    "show_caption_above_media", "has_media_spoiler", "contact", "dice", "poll", "venue", "location",
)
MEDIA_FIELDS = ("animation", "audio", "document", "photo", "video", "voice", "live_photo")


@dataclass
class ChatState:
    chat: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1
    # the custom reply keyboard the user currently sees (ReplyKeyboardMarkup), if any
    reply_keyboard: dict[str, Any] | None = None


class MessageStore:
    """All chats of one emulated bot."""

    def __init__(self, wall_time: Callable[[], float], *, strict_chats: bool = False) -> None:
        self._wall_time = wall_time
        self.strict_chats = strict_chats
        self.chats: dict[int, ChatState] = {}
        self._by_username: dict[str, int] = {}

    def now(self) -> int:
        """Unix time for message dates."""
        return int(self._wall_time())

    def register(self, chat: dict[str, Any]) -> ChatState:
        """Add or update a chat (the Bot API `Chat` JSON)."""
        state = self.chats.get(chat["id"])
        if state is None:
            state = self.chats[chat["id"]] = ChatState(dict(chat))
        else:
            state.chat = dict(chat)
        if chat.get("username"):
            self._by_username[chat["username"].lower()] = chat["id"]
        return state

    def resolve(self, chat_id: int | str) -> int | str:
        """The numeric id for `chat_id` (an id or "@username"), or the value unchanged."""
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                return self._by_username.get(chat_id[1:].lower(), chat_id)
            try:
                return int(chat_id)
            except ValueError:
                return chat_id
        return chat_id

    def chat(self, chat_id: int | str) -> ChatState:
        """The chat for a request's chat_id, created on first use unless the store is strict."""
        resolved = self.resolve(chat_id)
        if isinstance(resolved, int) and resolved in self.chats:
            return self.chats[resolved]
        if not isinstance(resolved, int) or resolved == 0 or self.strict_chats:
            raise bad_request("chat not found")
        if resolved > 0:
            return self.register({"id": resolved, "type": "private", "first_name": f"User {resolved}"})
        chat_type = "supergroup" if str(resolved).startswith("-100") else "group"
        return self.register({"id": resolved, "type": chat_type, "title": f"Group {resolved}"})

    def add_message(
        self,
        state: ChatState,
        sender: dict[str, Any],
        content: dict[str, Any],
        *,
        thread_id: int | None = None,
        reply_to: dict[str, Any] | None = None,
        date: int | None = None,
    ) -> dict[str, Any]:
        """Store a new message in `state`'s chat and return it (the stored dict itself)."""
        message: dict[str, Any] = {
            "message_id": state.next_message_id,
            "from": dict(sender),
            "chat": dict(state.chat),
            "date": self.now() if date is None else date,
        }
        state.next_message_id += 1
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if state.chat.get("is_forum"):
                message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        message.update(content)
        state.messages[message["message_id"]] = message
        return message

    def get(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The live (not deleted) message, or None."""
        state = self.chats.get(self.resolve(chat_id))  # type: ignore[arg-type]
        return None if state is None else state.messages.get(message_id)

    def delete(self, chat_id: int | str, message_id: int) -> bool:
        state = self.chats.get(self.resolve(chat_id))  # type: ignore[arg-type]
        if state is None or message_id not in state.messages:
            return False
        state.deleted[message_id] = state.messages.pop(message_id)
        return True

    def messages(
        self, chat_id: int, *, sender_id: int | None = None, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Copies of the chat's messages in id order, optionally only those from `sender_id`."""
        state = self.chats.get(chat_id)
        if state is None:
            return []
        found = [copy.deepcopy(m) for m in state.messages.values()]
        if include_deleted:
            found += [{**copy.deepcopy(m), "deleted": True} for m in state.deleted.values()]
        if sender_id is not None:
            found = [m for m in found if m.get("from", {}).get("id") == sender_id]
        return sorted(found, key=lambda m: m["message_id"])
