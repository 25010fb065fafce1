"""Group commit for `POST /api/v1/cases` with an Idempotency-Key: the requests of one process that wait
together are written together (`services.intake_batch`).

A request hands its event to the writer and awaits its answer. While a batch is being written in a
store thread, the requests that arrive queue up; they form the next batch as soon as it is done. So an
idle server answers a lone request at once, with no timer, and a busy one pays one BEGIN, one COMMIT and
one thread hop for up to `max_batch` events instead of one each. On PostgreSQL, where every statement
is a round trip, two batches are written at once (`writers`); on SQLite one, as its writers take turns.

Under steady load the batches would see-saw: while a big batch is written only a few requests arrive,
they go out alone as the next batch, and the big batch's clients come back while it is written. A
batch's fixed cost (the transaction, the thread hop, the dispatcher's turn after it) is then paid
for two or three cases. So after a batch of at least `GATHER_FROM` events, the next one waits up to
`gather_s` for as many requests as the last batch held (PostgreSQL's `commit_delay` with
`commit_siblings`), if that batch was written less than `BUSY_FOR_S` ago. It never waits when the last
batch was small or is a second old: a lone request, an idle server or a light load are written at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from services.context import ServiceContext
from services.intake_batch import KeyedEvent, intake_events_once

MAX_BATCH = 64
GATHER_FROM = 4  # a batch at least this big means a busy server: the next one gathers siblings
BUSY_FOR_S = 1.0  # ... if it was written this recently


class IntakeWriter:
    """One per API app; each event loop that calls it (one in `onegrid serve`) has its own queue and drain."""

    def __init__(self, ctx: ServiceContext, *, writers: int = 1, max_batch: int = MAX_BATCH, gather_s: float = 0.0,
                 write: Callable[[ServiceContext, Sequence[KeyedEvent]], list[Any]] = intake_events_once,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.writers = max(1, writers)  # batches written at once: one on SQLite (one writer anyway)
        self.max_batch = max_batch
        self.gather_s = gather_s  # how long a batch after a big one may wait for its siblings (0: never)
        self._write = write
        self._clock = clock
        self._queues: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = WeakKeyDictionary()

    async def write(self, event: KeyedEvent) -> Any:
        """The event's answer (a Response or `Replay`); raises what `intake_event_once` raises for it."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        answered: asyncio.Future[Any] = loop.create_future()
        queue.waiting.append((event, answered))
        if queue.gathered is not None and len(queue.waiting) >= queue.expected:
            queue.gathered.set()
        queue.drains = {drain for drain in queue.drains if not drain.done()}
        if len(queue.drains) < self.writers:
            queue.drains.add(loop.create_task(self._drain(queue)))
        return await answered

    async def _drain(self, queue: _Queue) -> None:
        while queue.waiting:
            await self._gather(queue)
            batch = [item for item in queue.waiting[: self.max_batch] if not item[1].done()]
            del queue.waiting[: self.max_batch]  # (done: a request cancelled while it waited)
            if not batch:
                continue
            queue.last = len(batch)
            try:
                answers = await asyncio.to_thread(self._write, self.ctx, [event for event, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every request of the batch answers with it
                answers = [exc] * len(batch)
            queue.written_at = self._clock()
            for (_, answered), answer in zip(batch, answers, strict=True):
                if answered.done():
                    continue
                if isinstance(answer, BaseException):
                    answered.set_exception(answer)
                else:
                    answered.set_result(answer)

    async def _gather(self, queue: _Queue) -> None:
        """After a big batch, wait up to `gather_s` until as many requests wait as it held."""
        expected = min(queue.last, self.max_batch)
        if self.gather_s <= 0 or queue.last < GATHER_FROM or len(queue.waiting) >= expected:
            return
        if self._clock() - queue.written_at > BUSY_FOR_S:
            return  # the big batch is history: this request is not part of its storm
        if queue.gathered is None:  # else another drain (PostgreSQL's) gathers already: wait with it
            queue.expected, queue.gathered = expected, asyncio.Event()
        gathered = queue.gathered
        try:
            await asyncio.wait_for(gathered.wait(), self.gather_s)
        except TimeoutError:
            pass  # as many as came: the batch goes now
        finally:
            if queue.gathered is gathered:
                queue.gathered = None


class _Queue:
    def __init__(self) -> None:
        self.waiting: list[tuple[KeyedEvent, asyncio.Future[Any]]] = []
        self.drains: set[asyncio.Task[None]] = set()
        self.last = 0  # events in the batch written last
        self.written_at = 0.0  # when it was written (the writer's clock)
        self.expected = 0  # while a batch gathers: how many waiting requests let it go at once
        self.gathered: asyncio.Event | None = None
