"""WeCom harness: the real OneGrid factory with both channels on; the Telegram side over the Bot API
emulator, the WeCom side over the WeCom emulator, and OneGrid's API served on loopback for callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from bot.emulator import BotApiEmulator
from onegrid.app import OneGrid, build, start_background, stop_background
from onegrid.clock import FakeClock
from onegrid.settings import Settings
from tests.worker_support import emulator, world  # noqa: F401  (fixtures)
from wecom.emulator import WecomEmulator


class Sleeps:
    """The WeCom client's waits, recorded instead of slept (a few milliseconds each)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0.001)


@pytest.fixture
async def wecom_emu(clock: FakeClock) -> AsyncIterator[WecomEmulator]:
    async with WecomEmulator(now=lambda: clock.now().timestamp()) as emu:
        yield emu


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def wecom_settings(db_url: str, tg: BotApiEmulator, wx: WecomEmulator, data_dir: Path) -> Settings:
    return Settings(_env_file=None, database_url=db_url, bot_token=tg.token, telegram_api_url=tg.base_url,
                    data_dir=data_dir, delivery_poll_interval_s=0.05, wecom_corp_id=wx.corp_id,
                    wecom_agent_id=wx.agent_id, wecom_secret=wx.secret, wecom_token=wx.token,
                    wecom_encoding_aes_key=wx.encoding_aes_key, wecom_api_base=wx.base_url)


@pytest.fixture
async def onegrid(db, clock: FakeClock, emulator: BotApiEmulator, wecom_emu: WecomEmulator,  # noqa: F811
                  sleeps: Sleeps, tmp_path: Path) -> AsyncIterator[OneGrid]:
    """OneGrid with Telegram and WeCom, its API listening on loopback as the WeCom callback URL."""
    app = build(wecom_settings(db.url, emulator, wecom_emu, tmp_path), clock=clock)
    app.wecom.client.sleep = sleeps
    await start_background(app, polling_timeout=1)
    server = uvicorn.Server(uvicorn.Config(app.api, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    wecom_emu.callback_url = f"http://127.0.0.1:{port}/wecom/callback"
    yield app
    server.should_exit = True
    await serving
    await stop_background(app)
    app.engine.dispose()
