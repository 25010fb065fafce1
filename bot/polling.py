"""Long polling through the durable inbox: an update is confirmed to Telegram only once it is stored.

aiogram's own `start_polling` moves the getUpdates offset as soon as it hands an update to a
task, so a crash while the handler runs loses the update. Here the loop is ours:
getUpdates (offset = one past the last *stored* update) -> `store_update` for each, committed ->
only then does the next getUpdates carry the new offset, which confirms them to Telegram. The
handlers run from the inbox (services/inbox.py), the same path as webhook mode.

What callers may rely on:
- An update is never confirmed before it is committed to the store; a crash at any point means
  Telegram sends it again, or the inbox holds it, or both (stored once by its update_id).
- getUpdates failures are retried with backoff, never fatal; 409 Conflict (another process polls
  this token, or a webhook is set) and a rejected token are logged as errors saying what to do.
- A store failure leaves the batch unconfirmed; it is fetched and stored again after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramConflictError, TelegramUnauthorizedError
from aiogram.methods import GetUpdates
from aiogram.utils.backoff import Backoff, BackoffConfig

from services.context import ServiceContext
from services.inbox import InboxProcessor
from services.telegram_webhook import CHANNEL, BadUpdate, store_updates, update_key

log = logging.getLogger(__name__)

BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=1.5, jitter=0.1)


class RawGetUpdates(GetUpdates):
    """getUpdates answering the updates as Telegram sent them (dicts), so the inbox stores them untouched."""

    __returning__ = list[dict[str, Any]]


class InboxPolling:
    """Fetches updates, stores them, then confirms them; `processor` handles them from the store."""

    def __init__(self, bot: Bot, ctx: ServiceContext, processor: InboxProcessor, *, timeout: int = 10,
                 allowed_updates: list[str] | None = None, backoff: BackoffConfig = BACKOFF) -> None:
        self.bot, self.ctx, self.processor = bot, ctx, processor
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self.backoff = Backoff(config=backoff)
        self.offset: int | None = None
        self.stored = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            updates = await self._fetch()
            if updates is None:
                await self._pause(stop)
                continue
            if updates and not await self._store(updates):
                await self._pause(stop)
                continue
            self.backoff.reset()
            if updates:
                ids = [u["update_id"] for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
                self.offset = max(ids) + 1 if ids else self.offset  # confirmed by the next getUpdates
                self.processor.wake(CHANNEL)

    async def _fetch(self) -> list[dict[str, Any]] | None:
        method = RawGetUpdates(offset=self.offset, timeout=self.timeout, allowed_updates=self.allowed_updates)
        # The HTTP request must outlive the long poll itself.
        request_timeout = int((self.bot.session.timeout or 0) + self.timeout)
        try:
            return await self.bot(method, request_timeout=request_timeout)
        except TelegramConflictError as exc:
            log.error("Telegram refused getUpdates with 409 Conflict (%s). Another process is polling this bot "
                      "token, or a webhook is set for it: stop the other OneGrid, or use webhook mode "
                      "(ONEGRID_WEBHOOK_URL). Retrying.", exc.message)
        except TelegramUnauthorizedError as exc:
            log.error("Telegram rejected the bot token (%s): check ONEGRID_BOT_TOKEN. Retrying.", exc.message)
        except Exception as exc:  # noqa: BLE001 - the Bot API may be unreachable for a while; keep polling
            log.warning("getUpdates failed (%s: %s); retrying", type(exc).__name__, exc)
        return None

    async def _store(self, updates: list[dict[str, Any]]) -> bool:
        good = []
        for update in updates:
            try:
                update_key(update)
                good.append(update)
            except BadUpdate:
                log.error("getUpdates returned something that is not an update, skipped: %.200r", update)
        try:
            # One commit for the batch, so the inbox hands it over together (as aiogram would have).
            self.stored += await asyncio.to_thread(store_updates, self.ctx, good)
        except Exception:  # noqa: BLE001 - unconfirmed, so Telegram sends them again
            log.exception("could not store %d update(s); they stay unconfirmed and are fetched again", len(good))
            return False
        return True

    async def _pause(self, stop: asyncio.Event) -> None:
        delay = next(self.backoff)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
