"""Live change notices for whoever watches the emulator (the sandbox console's live view).

What callers may rely on:
- While a `ChangeFeed` from `BotApiEmulator.watch()` is open, every change to a chat marks that
  chat's id in the feed: a message stored by a user's action or by the bot's call, an edit, a
  deletion, a reply keyboard set or removed, a callback query answered.
- `await feed.next(timeout)` returns the ids of the chats changed since the previous call,
  coalesced (ten edits to one chat are one entry), waiting up to `timeout` seconds for at least
  one; it returns an empty set on timeout and at once once the feed is closed.
- A feed holds at most one set of chat ids, however slow its reader: watching never blocks or
  slows the emulator. Closing a feed (or leaving its `with` block) stops it; stopping the
  emulator closes every feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ChangeFeed:
    """Chat ids changed since the last `next()`; see the module docstring."""

    def __init__(self, on_close: Callable[[ChangeFeed], None]) -> None:
        self._dirty: set[int] = set()
        self._event = asyncio.Event()
        self._on_close = on_close
        self.closed = False

    def mark(self, chat_id: int) -> None:
        """Record that `chat_id` changed (called by the emulator)."""
        if self.closed:
            return
        self._dirty.add(chat_id)
        self._event.set()

    async def next(self, timeout: float | None = None) -> set[int]:
        """The chats changed since the previous call; empty after `timeout` s or when closed."""
        if not self._dirty and not self.closed:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                pass
        changed, self._dirty = self._dirty, set()
        self._event.clear()
        if self.closed:
            self._event.set()  # later calls return at once too
        return changed

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._event.set()
        self._on_close(self)

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
