"""One process runs a singleton loop (a bot's sender), the others stand by and take over (services/leadership.py).

The failover is measured the way it happens in production: the leader is another OS process holding
the PostgreSQL advisory lock; it is killed with SIGKILL, and the time until the standby runs the loop is
taken from the kill. The figure is written to the test's log (docs/DEPLOY.md quotes it).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from services.leadership import Leadership, lock_key, token_name

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import asyncio, sys
from services.db import make_engine
from services.leadership import Leadership

async def main() -> None:
    leadership = Leadership(make_engine(sys.argv[1]), sys.argv[2], retry_s=0.2)
    async def work(stop):
        print("leading", flush=True)
        await stop.wait()
    await leadership.run(asyncio.Event(), work)

asyncio.run(main())
"""


def test_the_lock_key_comes_from_a_hash_of_the_token_never_the_token() -> None:
    name = token_name("telegram-sender", "123456:SECRET")
    assert "SECRET" not in name and name.startswith("telegram-sender:")
    assert lock_key(name) == lock_key(token_name("telegram-sender", "123456:SECRET"))
    assert lock_key(name) != lock_key(token_name("telegram-sender", "123456:OTHER"))
    assert -(2**63) <= lock_key(name) < 2**63


async def until(check, timeout: float) -> float:  # noqa: ANN001
    """Seconds until `check()` is true (fails after `timeout`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class Loop:
    """A singleton loop that records whether it runs."""

    def __init__(self) -> None:
        self.running = False
        self.starts = 0

    async def __call__(self, stop: asyncio.Event) -> None:
        self.running, self.starts = True, self.starts + 1
        try:
            await stop.wait()
        finally:
            self.running = False


async def test_only_one_of_two_processes_runs_the_loop_and_the_other_takes_over(db) -> None:
    name = f"test-sender:{uuid.uuid4().hex}"
    a, b = Leadership(db.engine, name, retry_s=0.1), Leadership(db.engine, name, retry_s=0.1)
    loop_a, loop_b = Loop(), Loop()
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(stop_a, loop_a))
    await until(lambda: loop_a.running, 10)
    task_b = asyncio.create_task(b.run(stop_b, loop_b))
    try:
        if db.kind == "sqlite":  # one process is the supported layout there: no lock, the loop runs
            await until(lambda: loop_b.running, 10)
            return
        await asyncio.sleep(0.5)
        assert loop_a.running and not loop_b.running and (a.leader, b.leader) == (True, False)
        stop_a.set()
        await task_a
        await until(lambda: loop_b.running, 5)
        assert b.leader and loop_a.starts == 1
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.gather(task_a, task_b)


@pytest.mark.postgres
async def test_a_leader_that_loses_its_connection_stops_and_the_standby_takes_over(db) -> None:
    if db.kind != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    name = f"test-sender:{uuid.uuid4().hex}"
    a = Leadership(db.engine, name, retry_s=0.1, check_s=0.2)
    b = Leadership(db.engine, name, retry_s=0.1, check_s=0.2)
    loop_a, loop_b = Loop(), Loop()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(stop, loop_a))]
    await until(lambda: loop_a.running, 10)
    tasks.append(asyncio.create_task(b.run(stop, loop_b)))
    try:
        # The database ends the leader's session (a restart, a network cut): the lock goes with it.
        with db.engine.connect() as conn:
            key = lock_key(name) & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks shows the key as two unsigned halves
            ended = conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"),
                {"hi": key >> 32, "lo": key & 0xFFFF_FFFF}).scalars().all()
        assert ended == [True]
        await until(lambda: not loop_a.running, 5)  # the old leader stops its loop
        await until(lambda: loop_b.running, 5)
        await asyncio.sleep(0.5)  # and does not take it back while b holds it
        assert not loop_a.running and loop_b.running
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@pytest.mark.postgres
async def test_a_process_stopped_while_it_asks_for_the_lock_does_not_keep_it(db) -> None:
    """A process stopped right after it started (its leadership task cancelled while a worker thread
    still asks PostgreSQL for the lock) gives a lock it got back at once: the next process takes over."""
    if db.kind != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    name = f"test-sender:{uuid.uuid4().hex}"
    for delay in (0, 0.001, 0.003, 0.01):  # before, during and after the connect and the ask
        quitter = Leadership(db.engine, name, retry_s=0.1)
        task = asyncio.create_task(quitter.run(asyncio.Event(), Loop()))
        await asyncio.sleep(delay)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with db.engine.connect() as conn:  # at once: no retry, no waiting for a garbage collector
            assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)}).scalar(), delay
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            conn.commit()


@pytest.mark.postgres
@pytest.mark.slow
async def test_failover_after_the_leader_process_is_killed(db, tmp_path: Path) -> None:
    if db.kind != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    name = f"test-sender:{uuid.uuid4().hex}"
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDER, db.url, name, cwd=ROOT,
                                                  stdout=asyncio.subprocess.PIPE)
    standby = Leadership(db.engine, name, retry_s=0.5)
    loop = Loop()
    stop = asyncio.Event()
    task = None
    try:
        assert (await asyncio.wait_for(holder.stdout.readline(), timeout=60)).strip() == b"leading"
        task = asyncio.create_task(standby.run(stop, loop))
        await asyncio.sleep(1.5)
        assert not loop.running  # the other process leads
        holder.kill()  # SIGKILL: no clean-up runs; its socket closes, PostgreSQL drops the lock
        failover = await until(lambda: loop.running, 10)
        print(f"failover after SIGKILL of the leader: {failover:.2f} s (standby asks every 0.5 s)")
        assert failover < 3.0
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        stop.set()
        if task is not None:
            await task


async def test_a_new_sender_takes_over_what_the_dead_one_had_in_hand_at_once(db, clock, tmp_path: Path) -> None:
    from bot.delivery import NotificationSender
    from models.tables import Notification, NotificationStatus
    from services.db import transaction
    from services.notify import enqueue_text

    with transaction(db.sessions) as session:
        for chat in (1, 2):
            enqueue_text(session, chat_id=chat, text=f"hello {chat}", now=clock.now())
    dead = NotificationSender(bot=None, sessions=db.sessions, clock=clock, data_dir=tmp_path)
    assert len(dead._claim()) == 2  # claimed under a 120 s lease, then its process died
    new = NotificationSender(bot=None, sessions=db.sessions, clock=clock, data_dir=tmp_path)
    assert new._claim() == []  # without the take-over the rows would wait out the lease
    assert await new.take_over() == 2
    assert sorted(r["chat_id"] for r in new._claim()) == [1, 2]
    with db.sessions() as s:
        assert {n.status for n in s.exec(select(Notification)).all()} == {NotificationStatus.SENDING}
