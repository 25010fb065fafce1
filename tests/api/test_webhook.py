"""Telegram webhook mode: the real app served on loopback, the Bot API emulator pushing updates to it.

Store before answering 200, each update_id handled once (also when redelivered), a crash between
storing and handling is made good after the restart; a wrong or missing secret is 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlmodel import func, select

from bot.emulator import BotApiEmulator
from models.api import InboxMessage
from models.tables import Notification
from onegrid.app import ConfigurationError, OneGrid, build, start_background, stop_background
from onegrid.settings import Settings
from tests.api.test_sync import Served, free_port

SECRET = "grid-s3cret_2026"
# A freshly started server on a loaded CI machine once took longer than httpx's 5 s default to answer.
HTTP_TIMEOUT = 60


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(limits=True) as emu:
        yield emu


def webhook_settings(db_url: str, emu: BotApiEmulator, data_dir: Path, port: int, **kw) -> Settings:
    return Settings(_env_file=None, database_url=db_url, bot_token=emu.token, telegram_api_url=emu.base_url,
                    data_dir=data_dir, delivery_poll_interval_s=0.05,
                    webhook_url=f"http://127.0.0.1:{port}/telegram/webhook", webhook_secret=SecretStr(SECRET), **kw)


class Running:
    def __init__(self, app: OneGrid, served: Served) -> None:
        self.app, self.served = app, served

    async def stop(self) -> None:
        await stop_background(self.app)
        await self.served.stop()
        self.app.engine.dispose()


async def run_onegrid(db, clock, emulator, tmp_path, port: int, *, background: bool = True) -> Running:
    app = build(webhook_settings(db.url, emulator, tmp_path, port), clock=clock)
    served = await Served(app.api, port).start()
    if background:
        await start_background(app, polling_timeout=1)
    return Running(app, served)


def stored(db) -> list[InboxMessage]:
    with db.sessions() as s:
        return list(s.exec(select(InboxMessage).order_by(InboxMessage.seq)))


def greetings(db, chat_id: int) -> int:
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(Notification).where(Notification.chat_id == chat_id)).one()


async def test_webhook_mode_refuses_to_start_without_a_secret(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        build(Settings(_env_file=None, data_dir=tmp_path, webhook_url="https://bot.example/telegram/webhook"))
    with pytest.raises(ConfigurationError):
        build(Settings(_env_file=None, data_dir=tmp_path, webhook_url="https://bot.example/telegram/webhook",
                       webhook_secret=SecretStr("has spaces!")))


async def test_updates_arrive_by_webhook_and_are_answered(db, clock, emulator, tmp_path) -> None:
    port = free_port()
    running = await run_onegrid(db, clock, emulator, tmp_path, port)
    try:
        ann = emulator.user(4301, first_name="Ann", language_code="en")
        update = await ann.send_command("/start")
        [greeting] = await ann.wait_inbox(1, timeout=15)
        assert greeting["text"].startswith("Hello, Ann!")
        # The greeting can leave before the processor marks the update done (its own commit): wait for it.
        await emulator.wait_for(lambda: [r.state for r in stored(db)] == ["done"])
        [row] = stored(db)
        assert (row.channel, row.dedup_key, row.seq) == ("telegram", str(update["update_id"]), update["update_id"])
        assert row.state == "done" and row.payload == update
        # Telegram redelivers the same update (say our 200 was lost): one effect only.
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            again = await client.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                                      headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert again.status_code == 200 and again.json() == {"ok": True, "duplicate": True}
        await running.app.webhook_processor.run_once()
        assert greetings(db, 4301) == 1 and len(emulator.sent(4301)) == 1
        # The startup hooks ran in webhook mode too: the residents' command menu, in both languages.
        menus = [c for c in emulator.calls("setMyCommands") if c.ok]
        assert sorted(c.params.get("language_code") or "" for c in menus) == ["", "zh"]
    finally:
        await running.stop()


async def test_wrong_or_missing_secret_is_401_and_stores_nothing(db, clock, emulator, tmp_path) -> None:
    port = free_port()
    running = await run_onegrid(db, clock, emulator, tmp_path, port, background=False)
    update = {"update_id": 99, "message": {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"},
                                           "text": "/start"}}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=HTTP_TIMEOUT) as client:
            missing = await client.post("/telegram/webhook", json=update)
            wrong = await client.post("/telegram/webhook", json=update,
                                      headers={"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"})
            not_update = await client.post("/telegram/webhook", json={"hello": 1},
                                           headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert (missing.status_code, wrong.status_code, not_update.status_code) == (401, 401, 400)
        assert stored(db) == []
    finally:
        await running.stop()


async def test_a_crash_between_storing_and_handling_is_handled_once_after_restart(db, clock, emulator,
                                                                                 tmp_path) -> None:
    port = free_port()
    bob = emulator.user(4302, first_name="Bob", language_code="en")
    # First life: the update is stored and acknowledged, then the process dies before handling it.
    first = await run_onegrid(db, clock, emulator, tmp_path, port, background=False)
    update = {"update_id": 7001, "message": {
        "message_id": 11, "date": int(clock.now().timestamp()), "text": "/start",
        "chat": {"id": 4302, "type": "private", "first_name": "Bob"},
        "from": {"id": 4302, "is_bot": False, "first_name": "Bob", "language_code": "en"},
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        r = await client.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                              headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert r.status_code == 200 and [u.state for u in stored(db)] == ["pending"]
    await first.stop()
    assert emulator.sent(4302) == []
    assert greetings(db, 4302) == 0
    # Second life: the stored update is handled, once.
    second = await run_onegrid(db, clock, emulator, tmp_path, port)
    try:
        [greeting] = await bob.wait_inbox(1, timeout=15)
        assert greeting["text"].startswith("Hello, Bob!")
        await second.app.webhook_processor.run_once()
        await asyncio.sleep(0)
        assert [u.state for u in stored(db)] == ["done"] and greetings(db, 4302) == 1
    finally:
        await second.stop()


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, not even `except Exception`."""


async def test_a_crash_after_the_handler_committed_does_not_greet_twice(db, clock, emulator, tmp_path,
                                                                       monkeypatch) -> None:
    port = free_port()
    cid = emulator.user(4303, first_name="Cid", language_code="en")
    first = await run_onegrid(db, clock, emulator, tmp_path, port, background=False)
    update = {"update_id": 7002, "message": {
        "message_id": 12, "date": int(clock.now().timestamp()), "text": "/start",
        "chat": {"id": 4303, "type": "private", "first_name": "Cid"},
        "from": {"id": 4303, "is_bot": False, "first_name": "Cid", "language_code": "en"},
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        r = await client.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                              headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert r.status_code == 200
    # First life: the handler runs and commits the greeting, then the process dies before the
    # processor's own bookkeeping after the handler.
    import services.inbox

    def die(*args, **kwargs) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(services.inbox, "_finish", die)
        with pytest.raises(Crash):
            await first.app.webhook_processor.run_once()
    await first.stop()
    assert greetings(db, 4303) == 1
    # Second life, after the lease has passed: the greeting is not queued again.
    clock.advance(seconds=first.app.settings.inbox_lease_s + 1)
    second = await run_onegrid(db, clock, emulator, tmp_path, port)
    try:
        [greeting] = await cid.wait_inbox(1, timeout=15)
        assert greeting["text"].startswith("Hello, Cid!")
        await second.app.webhook_processor.run_once()
        assert [u.state for u in stored(db)] == ["done"] and greetings(db, 4303) == 1
        assert len(emulator.sent(4303)) == 1
    finally:
        await second.stop()
