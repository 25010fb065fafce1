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
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.pace import WindowSlots, make_gate
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
    await asyncio.gather(*(_slot(gates[i % len(gates)]) for i in range(count)))
    return time.monotonic() - started


async def _slot(gate) -> None:
    async with gate.slot(Priority.REPLY):
        pass


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


async def test_calls_on_the_wire_in_one_process_hold_their_place_in_another_through_redis() -> None:
    url, token = redis_url(), f"123:{uuid.uuid4().hex}"
    # Slots a second apart, up to ten early while fewer than three are counted in a 0.3 s window.
    first, second = (make_gate(token, 1.0, url, count=3, window=0.3, burst=10) for _ in range(2))
    try:
        async with first.slot(Priority.REPLY), first.slot(Priority.REPLY), first.slot(Priority.REPLY):
            # The window is full with three calls on the wire in the other process, however long they
            # take: no early call; the next waits for its slot (3 s on) or for their answers and a window.
            waiting = asyncio.ensure_future(_slot(second))
            await asyncio.sleep(0.6)
            assert not waiting.done()
            answered = time.monotonic()
        await asyncio.wait_for(waiting, 5)
        assert 0.9 * 0.3 <= time.monotonic() - answered < 1.5  # a window after the answers, before its slot
    finally:
        await first.aclose()
        await second.aclose()


async def test_without_redis_the_gate_paces_in_process_and_says_so(caplog) -> None:
    gate = make_gate(f"789:{uuid.uuid4().hex}", 40.0, "redis://127.0.0.1:1/0", burst=1)  # nothing listens there
    try:
        with caplog.at_level(logging.WARNING, logger="bot.pace"):
            elapsed = await _take([gate], 11)
        assert elapsed >= 0.9 * 10 / 40.0  # still evenly spaced, by the in-process limiter
        assert [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()] == [
            "the shared send pace in Redis is unreachable (ConnectionError): pacing in this process only"]
    finally:
        await gate.aclose()


class FakeTime:
    """The window's clock: sleeping moves it on at once."""

    def __init__(self) -> None:
        self.now = 100.0

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def test_a_burst_goes_at_once_and_the_next_waits_a_window_after_the_first_answer() -> None:
    time_ = FakeTime()
    slots = WindowSlots(3, 1.0, per_second=2.0, burst=10, clock=lambda: time_.now, sleep=time_.sleep)
    answers = [await slots.acquire() for _ in range(3)]
    assert time_.now == 100.0  # three after a quiet spell: none waits
    time_.now = 100.25
    answers[1]()  # Telegram answered the second first, the others are still on the wire
    time_.now = 100.5
    answers[0]()
    answers[2]()
    fourth = await slots.acquire()
    # Counted until a window after its answer, not after it left: the first to leave the window is the
    # one answered first (100.25), though all three left at 100.0.
    assert time_.now == 101.25
    fifth = await slots.acquire()
    assert time_.now == 101.5
    fourth(), fifth()
    assert (await slots.acquire()) and time_.now == 101.5  # the third slot of the window at 101.5: free


async def test_calls_on_the_wire_hold_their_place_and_the_next_waits_for_its_evenly_spaced_slot() -> None:
    time_ = FakeTime()
    slots = WindowSlots(2, 1.0, per_second=1.0, burst=10, clock=lambda: time_.now, sleep=time_.sleep)
    first, second = await slots.acquire(), await slots.acquire()  # the second early, in the burst
    assert time_.now == 100.0
    time_.now = 100.5
    third = await slots.acquire()
    # Both are still on the wire, so the window has no room for an early call: the third goes at its
    # evenly spaced slot, two intervals after the first's (the second took the one between).
    assert time_.now == 102.0
    first()
    first()  # a second call of `answered` changes nothing
    second(), third()
    assert slots._in_flight == 0


async def test_under_load_the_calls_are_evenly_spaced_and_a_quiet_spell_allows_a_burst() -> None:
    time_ = FakeTime()
    slots = WindowSlots(30, 1.0, per_second=20.0, burst=4, clock=lambda: time_.now, sleep=time_.sleep)
    at = []
    for _ in range(8):
        (await slots.acquire())()  # answered at once: the window is not what holds them
        at.append(round(time_.now - 100.0, 3))
    assert at == [0.0, 0.0, 0.0, 0.0, 0.05, 0.1, 0.15, 0.2]  # four at once, then one every 50 ms
    time_.now += 0.1  # two intervals of quiet: two may go at once again, not four
    start = time_.now
    for _ in range(3):
        (await slots.acquire())()
    assert round(time_.now - start, 3) == 0.05


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.4), st.floats(0, 0.4), st.floats(0, 0.3)), min_size=1, max_size=40))
def test_no_window_of_arrivals_holds_more_than_the_count_whatever_the_delays(calls) -> None:
    """However late each call reaches Telegram (up to 0.4 s) and its answer comes back, no 0.6 s of
    arrivals on Telegram's clock holds more than `count` (5): early calls keep to the window (whatever
    the delays), calls at their slots (4 a second) to the spacing (which the 0.4 s of delay can bunch
    into 0.6 s, not less)."""
    arrivals = asyncio.run(_arrivals(calls))
    for start in arrivals:
        assert sum(1 for t in arrivals if start <= t < start + 0.6) <= 5, arrivals


async def _arrivals(calls: list[tuple[float, float, float]]) -> list[float]:
    """Each call, `gap` after the previous one asked, leaves when the window lets it, reaches Telegram
    `there` later and is answered `back` after that; the arrival times on Telegram's clock."""
    time_ = FakeTime()
    slots = WindowSlots(5, 1.0, per_second=4.0, burst=3, clock=lambda: time_.now, sleep=time_.sleep)
    pending: list[tuple[float, object]] = []  # (answer time, answered), of calls on the wire
    arrivals = []

    def answer_due() -> None:
        for item in sorted((p for p in pending if p[0] <= time_.now), key=lambda p: p[0]):
            pending.remove(item)
            item[1]()

    for gap, there, back in calls:
        time_.now += gap
        answer_due()
        acquiring = asyncio.ensure_future(slots.acquire())
        while not acquiring.done():
            for _ in range(5):
                await asyncio.sleep(0)
            if not acquiring.done():  # it waits for an answer: time runs on to the next one
                assert pending, "a caller waits with nothing on the wire"
                time_.now = max(time_.now, min(t for t, _ in pending))
                answer_due()
        answered = acquiring.result()
        answer_due()  # its own wait may have run the clock past answers
        arrivals.append(time_.now + there)
        pending.append((time_.now + there + back, answered))
    return arrivals
