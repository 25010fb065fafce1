"""The Bot API methods the emulator implements, one function each.

Each handler gets the emulator and the validated parameters (see `spec.ApiSpec.validate`) and
returns the `result` of a successful answer, or raises `ApiError`. Results have the JSON shape
Telegram returns, so aiogram parses them into its types. Methods not listed in `HANDLERS`
answer `true` when the spec says they return True, else 501 (see `server`).

The handlers live in `methods_messages` (sending, editing, deleting) and `methods_bot` (the bot
itself, updates and webhooks, callback answers, files, commands, menu); importing them here
fills the `registry` table, so `HANDLERS` is complete once this module is imported.
"""

from __future__ import annotations

from bot.emulator import methods_bot, methods_messages
from bot.emulator.registry import HANDLERS, Handler, method

__all__ = ["HANDLERS", "Handler", "method", "methods_bot", "methods_messages"]
