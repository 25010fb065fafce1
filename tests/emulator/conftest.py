"""Fixtures: an emulator on a free loopback port, and a real aiogram Bot pointed at it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image

from bot.emulator import BotApiEmulator

BotFactory = Callable[..., Awaitable[Bot]]


class ManualClock:
    """A monotonic clock for the flood limits that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture(scope="session")
def png() -> bytes:
    """A real 640x480 PNG."""
    image = Image.new("RGB", (640, 480), (200, 40, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    """An emulator without flood limits (tests of the limits build their own)."""
    async with BotApiEmulator(limits=False) as emulator:
        yield emulator


async def _close(bot: Bot) -> None:
    # AiohttpSession.close() sleeps 250 ms for TLS shutdown; loopback HTTP has none, and
    # closing the aiohttp session directly keeps the suite fast.
    client = getattr(bot.session, "_session", None)
    if client is not None and not client.closed:
        await client.close()


@pytest.fixture
async def make_bot() -> AsyncIterator[BotFactory]:
    """Build real aiogram Bots against an emulator; closed after the test."""
    bots: list[Bot] = []

    async def factory(emulator: BotApiEmulator, *, timeout: float = 10.0, token: str | None = None) -> Bot:
        session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url), timeout=timeout)
        bot = Bot(token or emulator.token, session=session)
        bots.append(bot)
        return bot

    yield factory
    for bot in bots:
        await _close(bot)


@pytest.fixture
async def bot(emu: BotApiEmulator, make_bot: BotFactory) -> Bot:
    return await make_bot(emu)
