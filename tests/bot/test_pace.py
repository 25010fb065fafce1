"""The bot-wide pace shared through Redis (bot/pace.py): two processes' gates keep one pace together.

Runs on the Redis the CI machine has (127.0.0.1:6379, or ONEGRID_TEST_REDIS_URL) and skips, saying so,
where none is reachable. Each test uses its own bot token, so its pace key is its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import pytest
import redis

from bot.pace import make_gate
from models.tables import Priority

REDIS_URL = os.environ.get("ONEGRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"no Redis reachable at {REDIS_URL} ({type(exc).__name__}): the shared pace is not tested here")
    return REDIS_URL


async def _take(gates: list, count: int) -> float:
    """`count` slots taken at once, spread over `gates`; seconds from the first call to the last slot."""
    started = time.monotonic()
    await asyncio.gather(*(gates[i % len(gates)].slot(Priority.REPLY) for i in range(count)))
    return time.monotonic() - started


async def test_two_processes_gates_share_one_pace_through_redis() -> None:
    url, token = redis_url(), f"123:{uuid.uuid4().hex}"
    rate, count = 40.0, 40
    first, second = make_gate(token, rate, url), make_gate(token, rate, url)  # as two processes would
    try:
        together = await _take([first, second], count)
        # Each gate alone would let its 20 through in half a second; sharing the pace takes the whole
        # second (a busy machine can only make it slower).
        assert together >= 0.9 * (count - 1) / rate
        other = make_gate(f"456:{uuid.uuid4().hex}", rate, url)  # another bot has a pace of its own
        try:
            assert await _take([other], 4) < 0.9 * (count - 1) / rate
        finally:
            await other.aclose()
    finally:
        await first.aclose()
        await second.aclose()


async def test_without_redis_the_gate_paces_in_process_and_says_so(caplog) -> None:
    gate = make_gate(f"789:{uuid.uuid4().hex}", 40.0, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with caplog.at_level(logging.WARNING, logger="bot.pace"):
            elapsed = await _take([gate], 11)
        assert elapsed >= 0.9 * 10 / 40.0  # still evenly spaced, by the in-process limiter
        assert [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()] == [
            "the shared send pace in Redis is unreachable (ConnectionError): pacing in this process only"]
    finally:
        await gate.aclose()


async def test_in_process_slots_do_not_catch_up_in_a_burst_after_a_quiet_spell() -> None:
    gate = make_gate(f"321:{uuid.uuid4().hex}", 20.0, None)  # one slot every 50 ms
    await gate.slot(Priority.REPLY)
    await asyncio.sleep(0.3)  # six slots' worth of quiet: none of them may be spent at once now
    started = time.monotonic()
    await _take([gate], 4)
    assert time.monotonic() - started >= 0.9 * 3 / 20.0
