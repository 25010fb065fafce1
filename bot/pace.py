"""The bot-wide pace: one stream of messages per bot under Telegram's limit, whoever sends them.

Telegram allows a bot about 30 messages a second in all. Two kinds of caller post messages: the
sender (bot/delivery.py: notifications, work orders) and handlers answering the person who just
wrote (`message.answer(...)`). Both take their slot from one `UrgencyGate`, so their sum keeps the pace.

What callers may rely on:
- `make_gate` builds the gate once per process (onegrid/app.py). Without Redis its slots come from
  `WindowSlots`: at most 30 calls in any second, each counted until a second after its answer, so
  Telegram's clock never sees more than 30 in a second; evenly spaced under load, and up to ten at
  once after a quiet spell, so a batch of work orders goes together. Right for one process, the
  SQLite layout.
- With `pace_redis_url` (default: the `redis_url`) the slots come from Redis, shared by every process
  that sends for the same bot token, so two or three `onegrid serve` behind a load balancer
  (docs/DEPLOY.md) together stay at the pace: the sender in one of them and the handlers' replies in
  all of them. Redis keeps one number per bot, the time the next slot is free (GCRA, "generic cell
  rate algorithm": a reservation moves it one interval on, in one Lua script, on Redis's clock so the
  hosts' clocks do not matter). A caller sleeps until its slot: evenly spaced, no bursts.
- If Redis cannot be reached, a caller takes its slot from the in-process window instead and says so
  in the log (at most once a minute): messages keep flowing, at worst faster than the pace, and
  Telegram's 429 answers are retried by the sender as before.
- `PacedRequests` is the Bot session's request middleware: every call that posts a message takes a
  slot at `Priority.REPLY`, unless the sender already took one for it (`already_paced`).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
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


class WindowSlots:
    """At most `count` calls in any `window` seconds, in one process, each counted from the moment it
    takes its slot until `window` seconds after it is answered; within that, evenly spaced at
    `per_second` with up to `burst` at once after a quiet spell.

    Telegram counts a message when it arrives, which is some time after the call leaves and before its
    answer comes back. Counting each call until a window after its answer therefore holds for Telegram's
    clock whatever the network's delay: any `count` + 1 calls that Telegram saw within one window would
    include one that left a window after another's answer, later than that one arrived.

    The spacing (GCRA with a tolerance of `burst` - 1 intervals) shapes what the window allows: a
    dispatcher's batch of work orders goes at once instead of one every 34 ms (the tenth of ten waited
    0.3 s with evenly spaced slots alone), and under a sustained load the calls stay evenly spaced, so
    the window never fills in one burst and then holds the next urgent message back for a second.
    Sustained, it allows the lower of `per_second` and `count` per `window` plus one answer's delay.

    `clock` and `sleep` default to the running loop's; tests pass a clock of their own. The callers come
    one at a time, through `UrgencyGate`.
    """

    def __init__(self, count: int, window: float, *, per_second: float, burst: int,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.count, self.window = count, window
        self.interval = 1.0 / per_second
        self.tolerance = (max(burst, 1) - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._tat = float("-inf")  # GCRA's "theoretical arrival time" of the next call
        self._answered: list[float] = []  # a heap of the answer times still inside a window
        self._in_flight = 0
        self._answer: asyncio.Event | None = None  # set on each answer, for a caller waiting on calls in flight

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def acquire(self) -> Callable[[], None]:
        """Wait for room, take it, and return `answered`, to be called once when the call is done (answered,
        refused, or given up on): from then on it counts for one more window."""
        while True:
            now = self._now()
            while self._answered and self._answered[0] <= now - self.window:
                heapq.heappop(self._answered)
            wait = max(self._tat, now) - self.tolerance - now
            if self._in_flight + len(self._answered) >= self.count:
                if not self._answered:  # every counted call is still on the wire: wait for an answer
                    self._answer = self._answer or asyncio.Event()
                    self._answer.clear()
                    await self._answer.wait()
                    continue
                wait = max(wait, self._answered[0] + self.window - now)  # the oldest answer leaves first
            if wait <= 1e-9:  # (float rounding of the intervals added up)
                break
            await self._sleep(wait)
        self._tat = max(self._tat, now) + self.interval
        self._in_flight += 1
        done = False

        def answered() -> None:
            nonlocal done
            if done:
                return
            done = True
            self._in_flight -= 1
            heapq.heappush(self._answered, self._now())
            if self._answer is not None:
                self._answer.set()

        return answered


def _nothing() -> None:
    """`answered` of a slot whose pace is kept elsewhere (Redis)."""


class RedisSlots:
    """Evenly spaced slots shared through Redis by every process sending for one bot (see the module)."""

    def __init__(self, redis: Redis, token: str, per_second: float, *, count: int, window: float, burst: int) -> None:
        self.redis = redis
        self.key = "onegrid:pace:" + hashlib.sha256(token.encode()).hexdigest()[:24]
        self.interval_ms = 1000.0 / per_second
        self.local = WindowSlots(count, window, per_second=per_second, burst=burst)
        self._reserve = redis.register_script(_RESERVE)
        self._warned_at = float("-inf")

    async def acquire(self) -> Callable[[], None]:
        try:
            wait_ms = float(await self._reserve(keys=[self.key], args=[f"{self.interval_ms:.3f}"]))
        except (RedisError, OSError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("the shared send pace in Redis is unreachable (%s): pacing in this process only",
                            type(exc).__name__)
            return await self.local.acquire()
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
        return _nothing

    async def close(self) -> None:
        await self.redis.aclose()


def make_gate(token: str, per_second: float, redis_url: str | None, *, count: int = 30, window: float = 1.0,
              burst: int = 10) -> UrgencyGate:
    """The process's one gate for `token`: Redis-shared slots `per_second` with a URL; without one, at most
    `count` calls in any `window` seconds, counted until a window after each answer, spaced at `per_second`
    with up to `burst` at once (`WindowSlots`)."""
    if redis_url:
        return UrgencyGate(RedisSlots(Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2),
                                      token, per_second, count=count, window=window, burst=burst))
    return UrgencyGate(WindowSlots(count, window, per_second=per_second, burst=burst))


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
            async with self.gate.slot(Priority.REPLY):
                return await make_request(bot, method)
        return await make_request(bot, method)
