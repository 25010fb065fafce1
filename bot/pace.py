"""The bot-wide pace: one evenly spaced stream of messages per bot, whoever sends them.

Telegram allows a bot about 30 messages a second in all. Two kinds of caller post messages: the
sender (bot/delivery.py: notifications, work orders) and handlers answering the person who just
wrote (`message.answer(...)`). Both take their slot from one `UrgencyGate`, so their sum keeps the pace.

What callers may rely on:
- `make_gate` builds the gate once per process (onegrid/app.py). Without Redis its slots come from an
  in-process limiter: right for one process, the SQLite layout. With `pace_redis_url` (default: the
  `redis_url`) the slots come from Redis, shared by every process that sends for the same bot token,
  so two or three `onegrid serve` behind a load balancer (docs/DEPLOY.md) together stay at the pace:
  the sender in one of them and the handlers' replies in all of them.
- Redis keeps one number per bot, the time the next slot is free (GCRA, "generic cell rate
  algorithm": a reservation moves it one interval on, in one Lua script, on Redis's clock so the
  hosts' clocks do not matter). A caller sleeps until its slot.
- If Redis cannot be reached, a caller takes its slot from the in-process limiter instead and says so
  in the log (at most once a minute): messages keep flowing, at worst faster than the pace, and
  Telegram's 429 answers are retried by the sender as before.
- `PacedRequests` is the Bot session's request middleware: every call that posts a message takes a
  slot at `Priority.REPLY`, unless the sender already took one for it (`already_paced`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.delivery_limits import UrgencyGate
from models.tables import Priority

log = logging.getLogger(__name__)

_PACED: ContextVar[bool] = ContextVar("onegrid_already_paced", default=False)

# KEYS[1]: the bot's next free slot (ms, Redis time); ARGV[1]: the interval in ms.
# Returns how many ms the caller waits for the slot it just reserved.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'PX', 60000)
return tostring(slot - now)
"""


class LocalSlots:
    """Evenly spaced slots in one process: the same GCRA as `RedisSlots`, on the event loop's clock.

    Each slot is one interval after the previous slot (or now, if that has passed), whenever the caller
    woke up, so late wake-ups do not add up. aiolimiter's leaky bucket, used before, measures from each
    wake-up and lost about 2.5 % of the pace (29.1 of 29.8 a second alone, 28.6–28.9 in the sender).
    The callers come one at a time, through `UrgencyGate`.
    """

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = float("-inf")

    async def acquire(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class RedisSlots:
    """Evenly spaced slots shared through Redis by every process sending for one bot (see the module)."""

    def __init__(self, redis: Redis, token: str, per_second: float) -> None:
        self.redis = redis
        self.key = "onegrid:pace:" + hashlib.sha256(token.encode()).hexdigest()[:24]
        self.interval_ms = 1000.0 / per_second
        self.local = LocalSlots(per_second)
        self._reserve = redis.register_script(_RESERVE)
        self._warned_at = float("-inf")

    async def acquire(self) -> None:
        try:
            wait_ms = float(await self._reserve(keys=[self.key], args=[f"{self.interval_ms:.3f}"]))
        except (RedisError, OSError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("the shared send pace in Redis is unreachable (%s): pacing in this process only",
                            type(exc).__name__)
            await self.local.acquire()
            return
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)

    async def close(self) -> None:
        await self.redis.aclose()


def make_gate(token: str, per_second: float, redis_url: str | None) -> UrgencyGate:
    """The process's one gate for `token`: Redis-shared slots with a URL, in-process slots without."""
    if redis_url:
        return UrgencyGate(RedisSlots(Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2),
                                      token, per_second))
    return UrgencyGate(LocalSlots(per_second))


@contextmanager
def already_paced() -> Iterator[None]:
    """Calls made inside took their slot already (the sender's own, at the row's priority)."""
    token = _PACED.set(True)
    try:
        yield
    finally:
        _PACED.reset(token)


def posts_message(method_name: str) -> bool:
    """True for calls that post a new message into a chat (sendMessage, sendPhoto, copyMessage...)."""
    return method_name.startswith(("send", "copy", "forward")) and method_name != "sendChatAction"


class PacedRequests(BaseRequestMiddleware):
    """A handler's message takes a bot-wide slot before it leaves (the sender's already has one)."""

    def __init__(self, gate: UrgencyGate) -> None:
        self.gate = gate

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Any,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if not _PACED.get() and posts_message(method.__api_method__):
            await self.gate.slot(Priority.REPLY)
        return await make_request(bot, method)
