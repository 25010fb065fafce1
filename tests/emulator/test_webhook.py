"""Webhook delivery to a real HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web

from bot.emulator import BotApiEmulator


@dataclass
class Receiver:
    """A tiny webhook endpoint: records what arrives, fails the first `fail_first` posts."""

    url: str = ""
    fail_first: int = 0
    reply: dict | None = None
    received: list[dict] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)
    attempts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return web.Response(status=500)
        self.received.append(await request.json())
        self.secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        return web.json_response(self.reply or {})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/hook"
    yield receiver
    await runner.cleanup()


async def test_updates_are_posted_with_the_secret_header(emu: BotApiEmulator, bot: Bot, receiver: Receiver) -> None:
    li = emu.user(3001, first_name="Li")
    assert await bot.set_webhook(receiver.url, secret_token="grid-s3cret_")

    update = await li.send_text("hello webhook")
    await emu.wait_for(lambda: receiver.received)

    assert receiver.received == [update]
    assert receiver.secrets == ["grid-s3cret_"]
    info = await bot.get_webhook_info()
    assert info.url == receiver.url and info.pending_update_count == 0
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates(timeout=0)


async def test_failed_deliveries_are_retried_and_reported(emu: BotApiEmulator, bot: Bot, receiver: Receiver) -> None:
    receiver.fail_first = 2
    li = emu.user(3002, first_name="Li")
    await bot.set_webhook(receiver.url)

    update = await li.send_text("retry me")
    await emu.wait_for(lambda: receiver.received)

    assert receiver.received == [update] and receiver.attempts == 3
    assert receiver.secrets == [None]
    info = await bot.get_webhook_info()
    assert "500" in info.last_error_message and info.last_error_date is not None


async def test_a_method_in_the_webhook_answer_is_executed(emu: BotApiEmulator, bot: Bot, receiver: Receiver) -> None:
    li = emu.user(3003, first_name="Li")
    receiver.reply = {"method": "sendMessage", "chat_id": li.id, "text": "answered inline"}
    await bot.set_webhook(receiver.url)

    await li.send_text("hi")
    await emu.wait_for(lambda: li.inbox)

    assert li.inbox[0]["text"] == "answered inline"
    assert emu.calls("sendMessage")[-1].source == "webhook-reply"


async def test_delete_webhook_returns_to_polling(emu: BotApiEmulator, bot: Bot, receiver: Receiver) -> None:
    li = emu.user(3004, first_name="Li")
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook(receiver.url, secret_token="not allowed!")
    receiver.fail_first = 10**6  # the receiver is down: updates stay pending
    await bot.set_webhook(receiver.url)
    await li.send_text("stuck")
    await li.send_text("stuck too")

    assert await bot.delete_webhook(drop_pending_updates=False)
    updates = await bot.get_updates(timeout=0)

    assert [u.message.text for u in updates] == ["stuck", "stuck too"]
    await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == []
    assert (await bot.get_webhook_info()).url == ""
