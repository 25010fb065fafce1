"""Counting a user's interactions the way the issue defines them: one message or one button press.

The count is taken from the emulator's record of every update the user sent (`BotApiEmulator.updates`),
not from the test's own steps, so a step the test forgot to count still shows up. A live location moving
on its own (an `edited_message`) is no interaction and is not counted.
"""

from __future__ import annotations

from typing import Any

from bot.emulator import BotApiEmulator


def mark(emulator: BotApiEmulator) -> int:
    """Where the user's interactions start: pass it to `interactions` afterwards."""
    return len(emulator.updates)


def _what(update: dict[str, Any]) -> tuple[int, str] | None:
    if "callback_query" in update:
        query = update["callback_query"]
        return query["from"]["id"], "press " + query.get("data", "")
    message = update.get("message")
    if message is None:
        return None
    for kind in ("photo", "document", "location", "venue", "contact"):
        if kind in message:
            return message["from"]["id"], kind
    text = message.get("text", "")
    return message["from"]["id"], "command " + text.split()[0] if text.startswith("/") else "text"


def interactions(emulator: BotApiEmulator, user_id: int, since: int) -> list[str]:
    """What `user_id` sent since `since` (from `mark`), one entry per message or button press, in order."""
    found = []
    for update in emulator.updates[since:]:
        what = _what(update)
        if what is not None and what[0] == user_id:
            found.append(what[1])
    return found
