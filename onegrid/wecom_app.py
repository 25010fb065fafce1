"""Wiring of the WeCom / 政务微信 channel (wecom/): built by onegrid/app.py when every WeCom setting is present.

The callback route stores each callback in the durable inbox (services/inbox.py, channel "wecom"); the
inbox processor hands them to wecom/handlers.py; the WeCom sender delivers the `wecom_message` outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from services.context import ServiceContext
from services.inbox import InboxProcessor, store_message
from wecom.callback import build_router
from wecom.client import WecomClient
from wecom.crypto import CallbackCrypto
from wecom.formats import Inbound
from wecom.handlers import WecomHandlers
from wecom.sender import WecomSender

CHANNEL = "wecom"


@dataclass
class WecomChannel:
    client: WecomClient
    sender: WecomSender
    handlers: WecomHandlers
    processor: InboxProcessor
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "sent": self.sender.sent, "failed": self.sender.failed,
                "retried": self.sender.retried, "token_fetches": self.client.token_fetches}

    def start(self, stop: asyncio.Event, poll_interval: float,
              lead: Callable[[Any], Callable[[asyncio.Event], Awaitable[Any]]] | None = None) -> list[asyncio.Task[Any]]:
        """Start the sender (through `lead`: only while this process leads it) and the inbox processor."""
        send = (lambda s: self.sender.run(s, poll_interval=poll_interval))
        send = lead(send) if lead is not None else send
        self.tasks = [asyncio.create_task(send(stop), name="wecom-sender"),
                      asyncio.create_task(self.processor.run(stop, poll_interval=poll_interval))]
        return self.tasks

    async def close(self) -> None:
        await self.client.aclose()


def build_wecom(ctx: ServiceContext, api: FastAPI) -> WecomChannel:
    """The WeCom client, sender, handlers and inbox processor; the callback route is added to `api`."""
    settings = ctx.settings
    client = WecomClient(api_base=settings.wecom_api_base, corp_id=settings.wecom_corp_id,
                         secret=settings.wecom_secret.get_secret_value(), clock=ctx.clock)
    sender = WecomSender(client=client, sessions=ctx.sessions, clock=ctx.clock, data_dir=settings.data_dir,
                         agent_id=settings.wecom_agent_id, max_attempts=settings.delivery_max_attempts)
    handlers = WecomHandlers(ctx, client)
    processor = InboxProcessor(ctx, {CHANNEL: handlers.handle}, lease=timedelta(seconds=settings.inbox_lease_s))

    def store(inbound: Inbound) -> bool:
        return store_message(ctx, channel=CHANNEL, key=inbound.dedup_key[:255], payload=inbound.as_payload(),
                             chat_key=inbound.from_user or None)

    api.include_router(build_router(CallbackCrypto.from_settings(settings), store, lambda: processor.wake(CHANNEL)))
    wake_before = ctx.on_notifications

    def wake_all() -> None:  # a committed change may have queued Telegram and WeCom messages both
        wake_before()
        sender.wake()

    ctx.on_notifications = wake_all
    return WecomChannel(client, sender, handlers, processor)
