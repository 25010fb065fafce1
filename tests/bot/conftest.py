"""Bot harness: the real OneGrid factory, the real aiogram Bot and Dispatcher, over HTTP to the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.emulator import BotApiEmulator
from onegrid.app import OneGrid, build, start_background, stop_background
from onegrid.clock import FakeClock
from onegrid.settings import Settings


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(limits=True) as emu:
        yield emu


def harness_settings(db_url: str, emu: BotApiEmulator, data_dir: Path) -> Settings:
    return Settings(_env_file=None, database_url=db_url, bot_token=emu.token, telegram_api_url=emu.base_url,
                    data_dir=data_dir, delivery_poll_interval_s=0.05)


@pytest.fixture
async def onegrid(db, clock: FakeClock, emulator: BotApiEmulator, tmp_path: Path) -> AsyncIterator[OneGrid]:
    """OneGrid built by its own factory, polling the emulator and sending through the queue."""
    app = build(harness_settings(db.url, emulator, tmp_path), clock=clock)
    await start_background(app, polling_timeout=1)
    yield app
    await stop_background(app)
    app.engine.dispose()
