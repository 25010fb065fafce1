"""The sender's limits (Telegram's, kept before Telegram has to say so), its counters and its backoff."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeliveryLimits:
    # The bot-wide pace (bot/pace.py): slots evenly spaced at `global_per_second`, and up to `burst` early
    # while fewer than `window_count` calls are counted in the last `window_s`, each until a window after its answer.
    global_per_second: float = 29.8
    window_count: int = 30
    window_s: float = 1.0
    burst: int = 10
    chat_interval_s: float = 1.05
    group_interval_s: float = 3.05
    max_attempts: int = 20
    quick_retries: int = 3
    max_retry_after_waits: int = 5


@dataclass
class DeliveryStats:
    sent: int = 0
    waited_429: int = 0
    transient_errors: int = 0
    rescheduled: int = 0
    blocked: int = 0
    failed: int = 0
    by_error: dict[str, int] = field(default_factory=dict)

    def count_error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.by_error[name] = self.by_error.get(name, 0) + 1


def backoff_seconds(attempts: int) -> float:
    """Delay before retry number `attempts` (1-based) of a row: 5 s doubling, capped at 15 min."""
    return min(5.0 * 2 ** max(attempts - 1, 0), 900.0)


class UrgencyGate:
    """The bot-wide pace, taken most urgent first.

    The limiter (bot/pace.py) says when the next call may go; this gate decides who waits for it: one
    caller at a time, the most urgent (lowest priority number), first come first served within a
    priority. So an urgent message waits for at most one slot behind the housekeeping already in flight.
    """

    def __init__(self, limiter: Any) -> None:  # `async acquire()` returning `answered()`: bot/pace.py's slots
        self._limiter = limiter
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._busy = False

    @asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        """Enter when the caller may make its call, and make it inside: the limiter counts the call until
        it is answered (bot/pace.py's window is measured from answers)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        self._next()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # our turn came as we were cancelled: pass it on
                self._busy = False
                self._next()
            raise
        try:
            answered = await self._limiter.acquire()
        finally:
            self._busy = False
            self._next()
        try:
            yield
        finally:
            answered()

    async def aclose(self) -> None:
        """Close what the slots come from, if it holds a connection (bot/pace.py's Redis)."""
        close = getattr(self._limiter, "close", None)
        if close is not None:
            await close()

    def _next(self) -> None:
        while not self._busy and self._waiting:
            _priority, _order, turn = heapq.heappop(self._waiting)
            if not turn.done():
                self._busy = True
                turn.set_result(None)
