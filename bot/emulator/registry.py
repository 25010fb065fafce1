"""The table of Bot API methods the emulator implements, filled by the `method` decorator.

Each handler gets the emulator and the validated parameters (see `spec.ApiSpec.validate`) and
returns the `result` of a successful answer (or an awaitable of it), or raises `ApiError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.emulator.server import BotApiEmulator

Handler = Callable[["BotApiEmulator", dict[str, Any]], Any | Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of Bot API method `name`."""

    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register
