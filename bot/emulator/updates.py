"""The bot's pending updates, served by getUpdates long polling or pushed to a webhook.

What callers may rely on:
- Update ids increase by one per queued update.
- `poll(offset, limit, timeout)` confirms (forgets) every update below a positive offset, keeps
  only the last |offset| for a negative one, and returns as soon as at least one update is
  pending (or `timeout` seconds pass, or the queue closes). A newer poll ends an older one still
  waiting with 409 Conflict, as Telegram does.
- Update kinds outside `allowed_updates` are dropped when met. The default, like Telegram's,
  leaves out chat_member, message_reaction and message_reaction_count.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.emulator.errors import ApiError

DEFAULT_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_kind(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")


class UpdateQueue:
    def __init__(self, first_update_id: int = 10_001) -> None:
        self._next_id = first_update_id
        self._pending: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []  # every update ever queued
        self.allowed: frozenset[str] | None = None
        self._signal = asyncio.Event()
        self._generation = 0
        self._termination = ""
        self._closed = False

    # -- producing ---------------------------------------------------------------------------

    def put(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue one update of `kind` ("message", "callback_query", ...) and return it."""
        update = {"update_id": self._next_id, kind: payload}
        self._next_id += 1
        self._pending.append(update)
        self.history.append(update)
        self.notify()
        return update

    def notify(self) -> None:
        """Wake everything waiting for a change (pollers, the webhook sender)."""
        self._signal.set()
        self._signal = asyncio.Event()

    async def changed(self, timeout: float | None) -> None:
        """Wait until the next change, or `timeout` seconds."""
        signal = self._signal
        try:
            await asyncio.wait_for(signal.wait(), timeout)
        except TimeoutError:
            pass

    # -- consuming ---------------------------------------------------------------------------

    def set_allowed(self, allowed: list[str] | None) -> None:
        """Remember allowed_updates as Telegram does; an empty list means the default set."""
        if allowed is not None:
            self.allowed = frozenset(allowed) if allowed else None

    def is_allowed(self, update: dict[str, Any]) -> bool:
        kind = update_kind(update)
        if self.allowed is None:
            return kind not in DEFAULT_EXCLUDED
        return kind in self.allowed

    @property
    def pending_count(self) -> int:
        return sum(1 for u in self._pending if self.is_allowed(u))

    def confirm(self, offset: int | None) -> None:
        if offset is None or offset == 0:
            return
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        else:
            self._pending = self._pending[offset:]

    def confirm_one(self, update_id: int) -> None:
        self._pending = [u for u in self._pending if u["update_id"] != update_id]

    def drop_pending(self) -> None:
        self._pending.clear()

    def first_pending(self) -> dict[str, Any] | None:
        """The oldest allowed pending update (dropping disallowed ones on the way)."""
        self._pending = [u for u in self._pending if self.is_allowed(u)]
        return self._pending[0] if self._pending else None

    def _select(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        self._pending = [u for u in self._pending if self.is_allowed(u)]
        start = offset if offset and offset > 0 else 0
        return [u for u in self._pending if u["update_id"] >= start][:limit]

    async def poll(self, offset: int | None, limit: int, timeout: float) -> list[dict[str, Any]]:
        """getUpdates: see the module docstring."""
        self.confirm(offset)
        self.terminate_polls("Conflict: terminated by other getUpdates request; "
                             "make sure that only one bot instance is running")
        generation = self._generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._generation:
                raise ApiError(409, self._termination)
            batch = self._select(offset, limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closed:
                return batch
            await self.changed(remaining)

    def terminate_polls(self, reason: str) -> None:
        """End every waiting poll with 409 `reason`."""
        self._generation += 1
        self._termination = reason
        self.notify()

    def close(self) -> None:
        """Make waiting polls return now, and later ones at once (used on shutdown)."""
        self._closed = True
        self.notify()

    def reopen(self) -> None:
        self._closed = False
