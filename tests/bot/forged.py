"""A callback query no button offered: what a modified client, or a stale message, can send."""

from __future__ import annotations

import itertools
from typing import Any

from bot.emulator import BotApiEmulator

_ids = itertools.count(1)


def forge_press(emulator: BotApiEmulator, user_id: int, message: dict[str, Any], callback_data: str) -> str:
    """Queue a callback query from `user_id` with any `callback_data` on `message` (in that user's chat or not).

    Returns the query id; the emulator accepts exactly one answer to it, as Telegram does."""
    query_id = f"forged-{next(_ids)}-{user_id}"
    emulator.callback_queries[query_id] = {"user_id": user_id, "data": callback_data,
                                           "chat_id": message["chat"]["id"], "message_id": message["message_id"],
                                           "answered": False}
    sender = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}", "language_code": "en"}
    emulator.queue_update("callback_query", {"id": query_id, "from": sender, "message": message,
                                             "chat_instance": str(message["chat"]["id"]), "data": callback_data})
    return query_id
