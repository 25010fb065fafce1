"""The bot-wide pace: one stream of messages per bot under Telegram's limit, whoever sends them.

Telegram allows a bot about 30 messages a second in all. Two kinds of caller post messages: the
sender (bot/delivery.py: notifications, work orders) and handlers answering the person who just
wrote (`message.answer(...)`). Both take their slot from one `UrgencyGate`, so their sum keeps the pace.

What callers may rely on:
- `make_gate` builds the gate once per process (onegrid/app.py). Its slots are evenly spaced at 29.8
  a second; after a quiet spell up to ten calls go at once, so a batch of work orders goes together,
  as long as fewer than 30 calls are counted in the last second, each until a second after its answer,
  which keeps Telegram's clock from seeing more than 30 in a second (`WindowSlots`).
- Without Redis the slots are counted in the process: right for one process, the SQLite layout. With
  `pace_redis_url` (default: the `redis_url`) they are counted in Redis, shared by every process that
  sends for the same bot token, so two or three `onegrid serve` behind a load balancer
  (docs/DEPLOY.md) together stay at the pace: the sender in one of them and the handlers' replies in
  all of them. Redis keeps per bot the calls of the last window (a sorted set) and the spacing's next
  time, changed by one Lua script on Redis's clock, so the hosts' clocks do not matter.
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
import itertools
import logging
import time
import uuid
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

# KEYS[1]: the bot's calls in the window (a sorted set: member a call's id, score when it was answered, or
# when it will count as answered at the latest while it is on the wire); KEYS[2]: GCRA's next arrival time.
# ARGV: count, window, interval, tolerance, hold (ms), the call's id. All times on Redis's clock.
# Returns "0" with the slot taken, or how many ms to wait before asking again.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local count, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local wait = tat - now
if redis.call('ZCARD', KEYS[1]) < count then
  local early = tat - tonumber(ARGV[4]) - now
  if early < wait then wait = early end
else
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local free = tonumber(oldest[2]) + window - now
  if free < wait then wait = free end
end
if wait > 0.001 then return tostring(wait) end
redis.call('SET', KEYS[2], tostring(tat + tonumber(ARGV[3])), 'PX', 60000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5]) + window) + 1000)
return '0'
"""

# KEYS[1]: as above; ARGV[1]: the call's id. The call was answered now (if it is still counted).
_ANSWERED = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000, ARGV[1])
return 0
"""

HOLD_S = 60.0  # a call never answered (its process died) counts as answered this long after it left


class WindowSlots:
    """Evenly spaced slots at `per_second`, as GCRA ("generic cell rate algorithm") keeps them, and calls
    up to `burst` - 1 slots early while the window has room: fewer than `count` calls counted in it,
    each from the moment it goes until `window` seconds after it is answered. In one process.

    - Early calls make a dispatcher's batch of work orders go at once: with evenly spaced slots alone the
      tenth of ten waited 0.3 s. An early call takes a later slot's place (the schedule moves on one
      interval per call), so the sustained pace stays `per_second`.
    - Early calls never make Telegram see more than `count` in a window. Telegram counts a message when
      it arrives: after the call left and before its answer came back. Take any calls Telegram saw within
      one window, the last of them to leave being an early one: each other one was counted when it left
      (answered less than a window before, or still on the wire), or it was answered, so had arrived,
      more than a window before that call left, outside the window. So there were fewer than `count`
      others, whatever the network's delay. When the last to leave went at its slot, no slot was owed
      (no call early), so the window held at most `window` × `per_second` calls before it: 29 at the
      defaults, as with evenly spaced slots alone.
    - Slow answers (a loaded or far Bot API) only take the bursts away: the calls go at their slots,
      `per_second`, as before. A window alone would fall to `count` per `window` plus the answer's delay.

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

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def acquire(self) -> Callable[[], None]:
        """Wait for room, take it, and return `answered`, to be called once when the call is done (answered,
        refused, or given up on): from then on it counts for one more window."""
        while True:
            now = self._now()
            while self._answered and self._answered[0] <= now - self.window:
                heapq.heappop(self._answered)
            tat = max(self._tat, now)
            wait = tat - now  # the evenly spaced slot: always allowed
            if self._in_flight + len(self._answered) < self.count:
                wait = min(wait, tat - self.tolerance - now)  # early, inside the burst, while the window has room
            elif self._answered:
                wait = min(wait, self._answered[0] + self.window - now)  # room again when the oldest answer leaves
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

        return answered


class RedisSlots:
    """`WindowSlots` shared through Redis by every process sending for one bot (see the module)."""

    def __init__(self, redis: Redis, token: str, per_second: float, *, count: int, window: float, burst: int) -> None:
        self.redis = redis
        key = hashlib.sha256(token.encode()).hexdigest()[:24]
        self.keys = [f"onegrid:pace:{key}:calls", f"onegrid:pace:{key}:tat"]
        interval = 1000.0 / per_second
        self.args = [str(count), f"{window * 1000:.3f}", f"{interval:.3f}", f"{(max(burst, 1) - 1) * interval:.3f}",
                     f"{HOLD_S * 1000:.0f}"]
        self.local = WindowSlots(count, window, per_second=per_second, burst=burst)
        self._reserve = redis.register_script(_RESERVE)
        self._answered = redis.register_script(_ANSWERED)
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:12]
        self._pending: set[asyncio.Task] = set()
        self._warned_at = float("-inf")

    async def acquire(self) -> Callable[[], None]:
        call = f"{self._prefix}:{next(self._ids)}"
        while True:
            try:
                wait_ms = float(await self._reserve(keys=self.keys, args=[*self.args, call]))
            except (RedisError, OSError) as exc:
                self._warn(exc)
                return await self.local.acquire()
            if wait_ms <= 0:
                break
            await asyncio.sleep(min(wait_ms, 250.0) / 1000)  # calls on the wire may be answered meanwhile
        done = False

        def answered() -> None:
            nonlocal done
            if not done:
                done = True
                task = asyncio.ensure_future(self._answer(call))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

        return answered

    async def _answer(self, call: str) -> None:
        try:
            await self._answered(keys=self.keys[:1], args=[call])
        except (RedisError, OSError) as exc:  # it counts until HOLD_S has passed instead
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("the shared send pace in Redis is unreachable (%s): pacing in this process only",
                        type(exc).__name__)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.redis.aclose()


def make_gate(token: str, per_second: float, redis_url: str | None, *, count: int = 30, window: float = 1.0,
              burst: int = 10) -> UrgencyGate:
    """The process's one gate for `token`: at most `count` calls in any `window` seconds, counted until a
    window after each answer, spaced at `per_second` with up to `burst` at once; counted in Redis with a
    URL (`RedisSlots`), in this process without (`WindowSlots`)."""
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
