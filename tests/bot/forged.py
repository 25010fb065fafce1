"""A callback query no button offered: what a modified client, or a stale message, can send."""

from __future__ import annotations

import itertools
from typing import Any

from bot.emulator import BotApiEmulator
from bot.emulator.users import FakeUser

_ids = itertools.count(1)


def forge_press(emulator: BotApiEmulator, user: FakeUser, message: dict[str, Any], callback_data: str) -> str:
    """Queue a callback query from `user` with any `callback_data` on `message` (in that user's chat or not).

    Returns the query id; the emulator accepts exactly one answer to it, as Telegram does."""
    query_id = f"forged-{next(_ids)}-{user.id}"
    emulator.callback_queries[query_id] = {"user_id": user.id, "data": callback_data,
                                           "chat_id": message["chat"]["id"], "message_id": message["message_id"],
                                           "answered": False}
    emulator.queue_update("callback_query", {"id": query_id, "from": user.as_user(), "message": message,
                                             "chat_instance": str(message["chat"]["id"]), "data": callback_data})
    return query_id
