"""Telegram's flood limits for message-sending methods, as sliding windows over a clock.

What callers may rely on (all times from the injected `now` callable, in seconds):
- per bot: at most 30 accepted messages in any sliding 1 s window (less the same 60 ms of
  jitter tolerance as per chat: two messages Telegram sees 0.99 s apart count as a second apart);
- per chat: a message is refused when the previous accepted one to that chat is less than
  `0.94` s old (1 s, less 60 ms of tolerance for timing jitter);
- per group (chat_id < 0): at most 20 accepted messages in any sliding 60 s window.
`acquire(chat_id)` either records the message and returns None, or records nothing and
returns `retry_after`: whole seconds (at least 1) until every violated window frees.

aiolimiter cannot serve here: it delays callers, while Telegram refuses and says when to retry.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    per_bot: int = 30
    per_bot_window: float = 1.0
    per_chat_interval: float = 1.0
    jitter_tolerance: float = 0.06
    per_group: int = 20
    per_group_window: float = 60.0


class FloodControl:
    """Sliding-window flood limits of one bot."""

    def __init__(self, now: Callable[[], float], limits: Limits | None = None) -> None:
        self._now = now
        self.limits = limits or Limits()
        self._bot: deque[float] = deque()
        self._last_by_chat: dict[int | str, float] = {}
        self._by_group: dict[int | str, deque[float]] = {}

    def acquire(self, chat_id: int | str) -> int | None:
        """Record one message to `chat_id`, or return the retry_after it must wait instead."""
        now = self._now()
        lim = self.limits
        free_at: list[float] = []

        bot_window = lim.per_bot_window - lim.jitter_tolerance
        _forget_before(self._bot, now - bot_window)
        if len(self._bot) >= lim.per_bot:
            free_at.append(self._bot[-lim.per_bot] + bot_window)

        last = self._last_by_chat.get(chat_id)
        interval = lim.per_chat_interval - lim.jitter_tolerance
        if last is not None and now - last < interval:
            free_at.append(last + interval)

        group = self._by_group.setdefault(chat_id, deque()) if _is_group(chat_id) else None
        if group is not None:
            _forget_before(group, now - lim.per_group_window)
            if len(group) >= lim.per_group:
                free_at.append(group[-lim.per_group] + lim.per_group_window)

        if free_at:
            return max(1, math.ceil(max(free_at) - now))
        self._bot.append(now)
        self._last_by_chat[chat_id] = now
        if group is not None:
            group.append(now)
        return None


def _forget_before(window: deque[float], cutoff: float) -> None:
    while window and window[0] <= cutoff:
        window.popleft()


def _is_group(chat_id: int | str) -> bool:
    return isinstance(chat_id, int) and chat_id < 0
