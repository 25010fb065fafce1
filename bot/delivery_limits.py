"""The sender's limits (Telegram's, kept before Telegram has to say so), its counters and its backoff."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeliveryLimits:
    global_per_second: float = 29.8
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
