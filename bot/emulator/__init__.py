"""A fake Telegram Bot API server on loopback ("the emulator").

The real aiogram Bot and Dispatcher run against it over HTTP; fake users and groups act in it;
it validates every call against the bundled Bot API spec, enforces Telegram's flood limits,
records what the bot sent, and injects faults. See `server.BotApiEmulator`.
"""

from bot.emulator.changes import ChangeFeed
from bot.emulator.errors import ApiError
from bot.emulator.ratelimit import Limits
from bot.emulator.server import BotApiEmulator, Fault, RecordedRequest
from bot.emulator.spec import ApiSpec, UploadedFile, load_spec
from bot.emulator.users import FakeGroup, FakeUser

__all__ = [
    "ApiError",
    "ApiSpec",
    "BotApiEmulator",
    "ChangeFeed",
    "FakeGroup",
    "FakeUser",
    "Fault",
    "Limits",
    "RecordedRequest",
    "UploadedFile",
    "load_spec",
]
