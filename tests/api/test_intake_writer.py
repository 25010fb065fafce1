"""The group commit of keyed intake (api/intake_writer.py): which requests are written together.

The writer is given a recording batch function in place of the store's, so that each test decides
when a batch "finishes"; what it checks is what a caller sees: which requests shared a transaction,
and that every request gets its own answer.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from api.intake_writer import BUSY_FOR_S, GATHER_FROM, IntakeWriter

GUARD_S = 10.0  # a test that would hang fails instead; no assertion is about time


class Recorder:
    """A batch function that records each batch and holds it until the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gates: list[threading.Event] = []
        self.started = threading.Semaphore(0)

    def __call__(self, _ctx: object, events: list[str]) -> list[Any]:
        gate = threading.Event()
        self.batches.append(list(events))
        self.gates.append(gate)
        self.started.release()
        gate.wait(GUARD_S)
        return [f"answer to {event}" for event in events]

    async def next_batch(self) -> None:
        """Until the writer hands over its next batch."""
        assert await asyncio.to_thread(self.started.acquire, True, GUARD_S), "no batch was written"

    def release(self) -> None:
        self.gates[-1].set()


def _writer(recorder: Recorder, gather_s: float) -> IntakeWriter:
    return IntakeWriter(ctx=None, gather_s=gather_s, write=recorder)  # type: ignore[arg-type]


async def _until_waiting(writer: IntakeWriter, count: int) -> None:
    """Until `count` requests wait in the writer's queue (the requests' tasks have run)."""
    queue = writer._queues[asyncio.get_running_loop()]
    while len(queue.waiting) < count:
        await asyncio.sleep(0)


def test_under_a_light_load_every_batch_goes_at_once_whatever_the_gather() -> None:
    recorder = Recorder()
    small = [f"b{i}" for i in range(GATHER_FROM - 1)]

    async def scenario() -> list[str]:
        writer = _writer(recorder, gather_s=3600)  # a batch that waited for siblings would hang the guard
        requests = [asyncio.create_task(writer.write("a"))]  # an idle writer: written at once
        await recorder.next_batch()
        requests += [asyncio.create_task(writer.write(event)) for event in small]
        await _until_waiting(writer, len(small))
        recorder.release()
        await recorder.next_batch()  # the small batch, held
        requests.append(asyncio.create_task(writer.write("lone")))
        await _until_waiting(writer, 1)
        recorder.release()
        await recorder.next_batch()  # after a small batch the next goes with what is there
        recorder.release()
        return list(await asyncio.wait_for(asyncio.gather(*requests), GUARD_S))

    answers = asyncio.run(scenario())
    assert recorder.batches == [["a"], small, ["lone"]]
    assert answers == [f"answer to {event}" for event in ["a", *small, "lone"]]


def test_after_a_big_batch_the_next_waits_for_as_many_requests_and_goes_when_they_are_there() -> None:
    recorder = Recorder()
    big = [f"b{i}" for i in range(GATHER_FROM + 1)]
    later = [f"c{i}" for i in range(len(big))]

    async def scenario() -> list[str]:
        writer = _writer(recorder, gather_s=3600)  # only enough siblings can let the third batch go
        first = asyncio.create_task(writer.write("a"))
        await recorder.next_batch()  # "a" alone, held in the store thread
        second = [asyncio.create_task(writer.write(event)) for event in big]
        await _until_waiting(writer, len(big))
        recorder.release()
        await recorder.next_batch()  # the big batch, held
        third = [asyncio.create_task(writer.write(later[0]))]  # arrives while the big batch is written
        await _until_waiting(writer, 1)
        recorder.release()
        for _ in range(50):  # the big batch's answers go out; the lone arrival waits for its siblings
            await asyncio.sleep(0)
        assert len(recorder.batches) == 2, "a batch after a big one went before its siblings came"
        third += [asyncio.create_task(writer.write(event)) for event in later[1:]]
        await recorder.next_batch()
        recorder.release()
        return list(await asyncio.wait_for(asyncio.gather(first, *second, *third), GUARD_S))

    answers = asyncio.run(scenario())
    assert recorder.batches == [["a"], big, later]
    assert answers == [f"answer to {event}" for event in ["a", *big, *later]]


def test_a_batch_after_a_big_one_goes_alone_when_no_sibling_comes_within_the_gather() -> None:
    recorder = Recorder()
    big = [f"b{i}" for i in range(GATHER_FROM)]

    async def scenario() -> str:
        writer = _writer(recorder, gather_s=0.01)
        first = asyncio.create_task(writer.write("a"))
        await recorder.next_batch()
        rest = [asyncio.create_task(writer.write(event)) for event in big]
        await _until_waiting(writer, len(big))
        recorder.release()
        await recorder.next_batch()  # the big batch
        lone = asyncio.create_task(writer.write("lone"))
        await _until_waiting(writer, 1)
        recorder.release()
        await recorder.next_batch()  # no sibling comes: after the gather the lone request goes by itself
        recorder.release()
        await asyncio.wait_for(asyncio.gather(first, *rest), GUARD_S)
        return await asyncio.wait_for(lone, GUARD_S)

    assert asyncio.run(scenario()) == "answer to lone"
    assert recorder.batches == [["a"], big, ["lone"]]


def test_a_request_long_after_a_big_batch_is_not_held_for_siblings() -> None:
    recorder = Recorder()
    big = [f"b{i}" for i in range(GATHER_FROM)]
    now = [100.0]

    async def scenario() -> list[str]:
        writer = IntakeWriter(ctx=None, gather_s=3600, write=recorder, clock=lambda: now[0])  # type: ignore[arg-type]
        requests = [asyncio.create_task(writer.write("a"))]
        await recorder.next_batch()
        requests += [asyncio.create_task(writer.write(event)) for event in big]
        await _until_waiting(writer, len(big))
        recorder.release()
        await recorder.next_batch()  # the big batch
        recorder.release()
        answers = list(await asyncio.wait_for(asyncio.gather(*requests), GUARD_S))
        now[0] += BUSY_FOR_S + 1  # the storm is over
        late = asyncio.create_task(writer.write("late"))
        await recorder.next_batch()  # written at once: waiting for siblings would hang the guard
        recorder.release()
        return [*answers, await asyncio.wait_for(late, GUARD_S)]

    assert asyncio.run(scenario()) == [f"answer to {event}" for event in ["a", *big, "late"]]
    assert recorder.batches == [["a"], big, ["late"]]
