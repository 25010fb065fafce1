"""One conversation's updates one at a time, and a flood from one user shed without slowing others.

aiogram runs every update as its own task. Two updates from the same person (an album of three
photos, a double tap on Submit) would then read and write the same conversation state at once
and lose each other's changes. `SheddingEventIsolation` is the Dispatcher's `events_isolation`:
aiogram takes its lock, per conversation key, before it even reads the state.

What callers may rely on:
- Updates of one conversation (chat + user) are handled one at a time, in the order Telegram
  sent them; other conversations are never held up by it.
- At most `max_pending` updates of one conversation wait for their turn. Beyond that an update is
  refused at once with `FloodShed` (before any database work), which the Dispatcher's error
  observers see like any other handler error; `register_flood_notice` answers it with a polite
  notice to the user, at most once per `notice_interval` seconds.
- The lock is in-process. Across processes (webhook mode, docs/DEPLOY.md) the inbox gives a chat's
  updates to one process at a time, in order (services/inbox.py), and this lock orders them there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiogram import Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import ErrorEvent, User
from aiogram.utils.i18n import gettext as _

from services.context import ServiceContext
from services.notify import send_reply

log = logging.getLogger(__name__)


class FloodShed(Exception):
    """An update refused because too many from the same conversation were already waiting."""

    def __init__(self, key: StorageKey, pending: int) -> None:
        super().__init__(f"conversation {key.chat_id}/{key.user_id}: {pending} updates already waiting")
        self.key = key
        self.pending = pending


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0  # updates holding or waiting for `lock`


class SheddingEventIsolation(BaseEventIsolation):
    """Per-conversation lock (like aiogram's SimpleEventIsolation) with a bounded queue."""

    def __init__(self, max_pending: int = 10) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self._slots: dict[StorageKey, _Slot] = {}
        self.shed = 0  # updates refused so far, for health and tests

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.pending >= self.max_pending:
            self.shed += 1
            raise FloodShed(key, slot.pending)
        slot.pending += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.pending -= 1
            if slot.pending == 0:
                # Forget idle conversations so the table does not grow with every user ever seen.
                self._slots.pop(key, None)

    def waiting(self, key: StorageKey) -> int:
        slot = self._slots.get(key)
        return 0 if slot is None else slot.pending

    async def close(self) -> None:
        self._slots.clear()


class FloodNotices:
    """Remembers when each user was last told to slow down (in memory, bounded)."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_users: int = 10_000) -> None:
        self.interval = interval
        self.clock = clock
        self.max_users = max_users
        self._last: dict[int, float] = {}

    def due(self, user_id: int) -> bool:
        """True (and remembered) when `user_id` has not been told within the interval."""
        now = self.clock()
        last = self._last.get(user_id)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= self.max_users:
            self._last = {u: t for u, t in self._last.items() if now - t < self.interval}
        self._last[user_id] = now
        return True


def register_flood_notice(router: Router, notices: FloodNotices | None = None) -> None:
    """Answer `FloodShed` on `router`'s error observer with one notice per user per interval."""
    notices = notices or FloodNotices()

    async def on_flood(event: ErrorEvent, ctx: ServiceContext, event_from_user: User | None = None) -> bool:
        exc = event.exception
        assert isinstance(exc, FloodShed)
        log.info("shed an update: %s", exc)
        if event_from_user is not None and exc.key.chat_id > 0 and notices.due(event_from_user.id):
            text = _("You are sending messages faster than I can read them, so I skipped some. "
                     "Please wait a moment, then send one message at a time.")
            await asyncio.to_thread(send_reply, ctx, chat_id=exc.key.chat_id, text=text)
        return True

    router.errors.register(on_flood, ExceptionTypeFilter(FloodShed))


__all__: list[Any] = ["FloodNotices", "FloodShed", "SheddingEventIsolation", "register_flood_notice"]
