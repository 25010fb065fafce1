"""The asynchronous dispatcher on SQLite and PostgreSQL: nothing lost across a crash, nothing offered twice."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models.lifecycle import Action, Actor, Role, Status
from models.tables import Case
from models.work import CaseTask, OfferStatus, PendingDispatch, WorkOffer
from services import cases, dispatcher
from services.context import ServiceContext
from services.db import make_engine, make_session_factory
from tests.worker_support import GRID, OTHER_GRID, STREET, add_worker, make_ctx, queued, report
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def crashed_before_dispatch(ctx: ServiceContext) -> ServiceContext:
    """A process that registers cases and dies before its dispatcher runs: the wake goes nowhere."""
    return replace(ctx, on_registered=lambda: None)


@contextmanager
def statements(db, keep: Callable[[str], bool] = lambda statement: True) -> Iterator[list[str]]:  # noqa: ANN001
    """The SQL statements sent to the store inside the block that `keep` accepts (an executemany once)."""
    sent: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        if keep(statement):
            sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def offers_of(db, case_id: int) -> list[WorkOffer]:
    with db.sessions() as s:
        return list(s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id)).all())


def waiting(db) -> list[int]:
    with db.sessions() as s:
        return list(s.exec(select(PendingDispatch.case_id)).all())


def test_a_case_registered_before_a_crash_is_dispatched_after_the_restart(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 701)
    case = report(crashed_before_dispatch(ctx), dispatch_now=False)

    # The answer went out, the case is registered and queued, and nobody was offered anything yet.
    assert case.status == Status.REGISTERED
    assert waiting(db) == [case.id] and offers_of(db, case.id) == []
    assert queued(db.sessions, 701) == []

    async def restart() -> None:  # a new process: its dispatcher loop takes what it finds at start
        stop = asyncio.Event()
        loop = dispatcher.CaseDispatcher(ctx, poll_interval=60)
        task = asyncio.create_task(loop.run(stop))
        for _ in range(500):
            if not waiting(db):
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(restart())
    assert waiting(db) == []
    [offer] = offers_of(db, case.id)
    assert (offer.worker_id, offer.status) == (worker, OfferStatus.OPEN)
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.DISPATCHED
    [order, *_] = queued(db.sessions, 701)
    assert case.number in (order.payload.get("text") or order.payload.get("caption") or "")


def test_a_woken_dispatcher_offers_the_case_without_waiting_for_its_poll(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 702)

    async def scenario() -> Status:
        stop = asyncio.Event()
        # Only a wake can make it run again; a lone registration does not wait for others, however long it may.
        loop = dispatcher.CaseDispatcher(ctx, poll_interval=3600, gather_s=3600)
        task = asyncio.create_task(loop.run(stop))
        while not loop.running:
            await asyncio.sleep(0)
        live = replace(ctx, on_registered=loop.wake)
        case = await asyncio.to_thread(report, live, dispatch_now=False)
        assert case.status == Status.REGISTERED  # the answer does not wait for dispatch
        for _ in range(500):
            with db.sessions() as s:
                status = Status(s.get(Case, case.id).status)
            if status is Status.DISPATCHED:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return status

    assert asyncio.run(scenario()) is Status.DISPATCHED
    assert waiting(db) == []


async def _until_none_wait(db) -> None:  # noqa: ANN001
    for _ in range(1000):
        if not waiting(db):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"cases still wait for the dispatcher: {waiting(db)}")


def test_while_registrations_pour_in_a_wake_waits_for_the_next_and_one_batch_offers_both(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 703)
    silent = crashed_before_dispatch(ctx)
    for i in range(dispatcher.GATHER_FROM):  # a pile found at start: a batch big enough to mean "busy"
        report(silent, description=f"pile {i}", dispatch_now=False)
    claims = lambda statement: statement.lstrip().upper().startswith("DELETE FROM PENDING_DISPATCH")  # noqa: E731

    async def scenario() -> tuple[int, int, list[str], list[int]]:
        stop = asyncio.Event()
        loop = dispatcher.CaseDispatcher(ctx, poll_interval=3600, gather_s=3600)  # only wakes move it
        task = asyncio.create_task(loop.run(stop))
        await _until_none_wait(db)
        live = replace(ctx, on_registered=loop.wake)
        with statements(db, keep=claims) as taken:
            first = await asyncio.to_thread(report, live, description="first of a storm", dispatch_now=False)
            for _ in range(20):  # the wake came; the dispatcher waits for the next registering commit
                await asyncio.sleep(0.01)
            still = waiting(db)
            second = await asyncio.to_thread(report, live, description="second of a storm", dispatch_now=False)
            await _until_none_wait(db)
        stop.set()
        await task
        return first.id, second.id, taken, still

    first, second, taken, still = asyncio.run(scenario())
    assert still == [first]
    assert len(taken) == 1  # one claim took both
    with db.sessions() as s:
        assert [Status(s.get(Case, i).status) for i in (first, second)] == [Status.DISPATCHED] * 2
    assert [len(offers_of(db, i)) for i in (first, second)] == [1, 1]


def test_a_registration_a_while_after_a_big_batch_is_offered_at_once(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 704)
    silent = crashed_before_dispatch(ctx)
    for i in range(dispatcher.GATHER_FROM):  # a pile found at start: a big batch
        report(silent, description=f"pile {i}", dispatch_now=False)

    async def scenario() -> Status:
        stop = asyncio.Event()
        loop = dispatcher.CaseDispatcher(ctx, poll_interval=3600, gather_s=3600)  # only wakes move it
        task = asyncio.create_task(loop.run(stop))
        await _until_none_wait(db)
        clock.advance(seconds=dispatcher.BUSY_FOR.total_seconds() + 1)  # the storm is over
        live = replace(ctx, on_registered=loop.wake)
        case = await asyncio.to_thread(report, live, description="the next day's first", dispatch_now=False)
        await _until_none_wait(db)  # a wake that gathered would wait for another registration: it would fail here
        stop.set()
        await task
        with db.sessions() as s:
            return Status(s.get(Case, case.id).status)

    assert asyncio.run(scenario()) is Status.DISPATCHED


def test_two_dispatchers_on_one_store_offer_each_case_once(ctx, db, clock) -> None:
    workers = [add_worker(db.sessions, clock.now(), 710 + i) for i in range(2)]
    silent = crashed_before_dispatch(ctx)
    cases = [report(silent, description=f"pile {i}", dispatch_now=False) for i in range(40)]
    assert sorted(waiting(db)) == sorted(c.id for c in cases)

    # Two processes: each its own engine and pool on the same store, running batches at the same time.
    taken: list[int] = []
    barrier = threading.Barrier(2)

    def process() -> None:
        engine = make_engine(db.url)
        own = replace(ctx, sessions=make_session_factory(engine), on_registered=lambda: None)
        barrier.wait()
        try:
            while n := dispatcher.dispatch_pending(own, limit=3):
                taken.append(n)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=process) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert sum(taken) == len(cases) and waiting(db) == []
    with db.sessions() as s:
        per_case = s.execute(sa.select(CaseTask.case_id, sa.func.count()).group_by(CaseTask.case_id)).all()
        offers = s.execute(sa.select(WorkOffer.task_id, WorkOffer.worker_id, sa.func.count())
                           .group_by(WorkOffer.task_id, WorkOffer.worker_id)).all()
        statuses = set(s.exec(select(Case.status)).all())
    assert sorted(c for c, _ in per_case) == sorted(c.id for c in cases) and {n for _, n in per_case} == {1}
    assert {n for *_, n in offers} == {1} and len(offers) == len(cases) * len(workers)
    assert statuses == {Status.DISPATCHED}


def test_a_batch_reads_its_grids_on_duty_workers_once_and_offers_as_case_by_case(ctx, db, clock) -> None:
    in_grid = add_worker(db.sessions, clock.now(), 740)
    street_pool = add_worker(db.sessions, clock.now(), 741, area_code=STREET)
    add_worker(db.sessions, clock.now(), 742, area_code=OTHER_GRID, on_duty=False)  # off duty: never offered
    silent = crashed_before_dispatch(ctx)
    here = [report(silent, description=f"here {i}", dispatch_now=False) for i in range(3)]
    there = [report(silent, grid=OTHER_GRID, description=f"there {i}", dispatch_now=False) for i in range(2)]
    with statements(db, lambda s: "FROM person WHERE person.area_code IN" in " ".join(s.split())) as people_reads:
        assert dispatcher.dispatch_pending(ctx) == 5  # (people_reads: some areas' on-duty pool)
    assert [[o.worker_id for o in offers_of(db, case.id)] for case in here] == [[in_grid]] * 3
    assert [[o.worker_id for o in offers_of(db, case.id)] for case in there] == [[street_pool]] * 2
    assert len(people_reads) == 1  # one read for the batch, not one per task


def test_a_batch_mixing_grids_of_one_and_two_workers_goes_through_as_one(ctx, db, clock, caplog) -> None:
    """Offering to two workers reads their load from the tasks and offers the batch is writing, which
    writes those rows early; the next case's rows wait again, in another order. The batch still goes
    through as one (it used to fail on a foreign key and run case by case)."""
    pair = [add_worker(db.sessions, clock.now(), 750), add_worker(db.sessions, clock.now(), 751)]
    alone = add_worker(db.sessions, clock.now(), 752, area_code=OTHER_GRID)
    silent = crashed_before_dispatch(ctx)
    grids = [OTHER_GRID, GRID, OTHER_GRID, GRID, OTHER_GRID]
    made = [report(silent, grid=grid, description=f"pile {i}", dispatch_now=False) for i, grid in enumerate(grids)]
    caplog.set_level(logging.DEBUG, logger="services.dispatcher")
    assert dispatcher.dispatch_pending(ctx) == 5
    assert [sorted(o.worker_id for o in offers_of(db, case.id)) for case in made] == \
        [[alone] if grid == OTHER_GRID else pair for grid in grids]
    assert "failed" not in caplog.text and waiting(db) == []
    assert [len(queued(db.sessions, person)) for person in (750, 751, 752)] == [2, 2, 3]


def test_a_batch_offers_to_the_least_loaded_counting_its_own_offers_and_reads_the_loads_once(ctx, db, clock) -> None:
    """Four workers in one grid, three offered per task (least loaded first, then the longest-serving):
    each case of one batch sees the offers the cases before it made, as if each had come alone."""
    w1, w2, w3, w4 = (add_worker(db.sessions, clock.now(), 760 + i) for i in range(4))
    busy = add_worker(db.sessions, clock.now(), 765, area_code=OTHER_GRID)
    silent = crashed_before_dispatch(ctx)
    elsewhere = report(silent, grid=OTHER_GRID, description="elsewhere", dispatch_now=False)
    assert dispatcher.dispatch_pending(ctx) == 1 and [o.worker_id for o in offers_of(db, elsewhere.id)] == [busy]
    made = [report(silent, description=f"pile {i}", dispatch_now=False) for i in range(4)]
    with statements(db, lambda s: "count(" in s.lower()) as loads:
        assert dispatcher.dispatch_pending(ctx) == 4
    offered = [sorted(o.worker_id for o in offers_of(db, case.id)) for case in made]
    # Open offers before each case: none; one each for w1-w3; two for w1 and w2, one for w3 and w4; three for w1.
    assert offered == [sorted([w1, w2, w3]), sorted([w4, w1, w2]), sorted([w3, w4, w1]), sorted([w2, w3, w4])]
    assert len(loads) == 2  # tasks held and offers open, for the whole batch's pool, once


def test_a_batch_sends_as_many_statements_for_six_cases_as_for_two(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 745)
    add_worker(db.sessions, clock.now(), 746, area_code=OTHER_GRID)
    silent = crashed_before_dispatch(ctx)
    report(silent, description="the first, to warm the caches", dispatch_now=False)
    assert dispatcher.dispatch_pending(ctx) == 1
    sent: list[int] = []
    for size in (2, 6):
        for i in range(size):
            report(silent, grid=OTHER_GRID if i % 2 else GRID, description=f"batch of {size}: {i}", dispatch_now=False)
        with statements(db) as made:
            assert dispatcher.dispatch_pending(ctx) == size
        sent.append(len(made))
    # Tasks, offers, work orders, status changes and their audit rows: one statement each for the batch.
    assert sent[0] == sent[1], sent
    assert len(queued(db.sessions, 745)) + len(queued(db.sessions, 746)) == 9


def test_a_case_whose_dispatch_fails_waits_and_does_not_block_the_others(ctx, db, clock, monkeypatch) -> None:
    add_worker(db.sessions, clock.now(), 720)
    silent = crashed_before_dispatch(ctx)
    bad, good = (report(silent, description="bad", dispatch_now=False),
                 report(silent, description="good", dispatch_now=False))
    real = dispatcher.dispatch.dispatch_new_case

    def flaky(session, ctx_, case) -> None:  # noqa: ANN001 - a store fault on one case only
        if case.id == bad.id:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        real(session, ctx_, case)

    monkeypatch.setattr(dispatcher.dispatch, "dispatch_new_case", flaky)
    assert dispatcher.dispatch_pending(ctx) == 2
    assert len(offers_of(db, good.id)) == 1 and offers_of(db, bad.id) == []
    assert waiting(db) == [bad.id]  # back in the queue, not before a short backoff
    assert dispatcher.dispatch_pending(ctx) == 0
    monkeypatch.setattr(dispatcher.dispatch, "dispatch_new_case", real)
    clock.advance(seconds=5)
    assert dispatcher.dispatch_pending(ctx) == 1
    assert len(offers_of(db, bad.id)) == 1 and waiting(db) == []


def test_a_failure_after_earlier_cases_of_the_batch_were_offered_loses_none_of_them(ctx, db, clock, monkeypatch) -> None:
    worker = add_worker(db.sessions, clock.now(), 725)
    silent = crashed_before_dispatch(ctx)
    good = [report(silent, description=f"good {i}", dispatch_now=False) for i in range(3)]
    bad = report(silent, description="bad", dispatch_now=False)  # last: the others' rows wait in the batch
    real = dispatcher.dispatch.dispatch_new_case

    def flaky(session, ctx_, case) -> None:  # noqa: ANN001 - a store fault on the batch's last case only
        if case.id == bad.id:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        real(session, ctx_, case)

    monkeypatch.setattr(dispatcher.dispatch, "dispatch_new_case", flaky)
    assert dispatcher.dispatch_pending(ctx) == 4
    assert [[o.worker_id for o in offers_of(db, case.id)] for case in good] == [[worker]] * 3
    assert waiting(db) == [bad.id] and offers_of(db, bad.id) == []
    orders = queued(db.sessions, 725)
    assert len(orders) == 3 and all(case.number in order.payload.get("caption", order.payload.get("text", ""))
                                    for case, order in zip(good, orders, strict=True))
    monkeypatch.setattr(dispatcher.dispatch, "dispatch_new_case", real)
    clock.advance(seconds=5)
    assert dispatcher.dispatch_pending(ctx) == 1 and [o.worker_id for o in offers_of(db, bad.id)] == [worker]


def test_a_case_changed_under_the_batch_fails_its_version_check_and_every_case_is_offered_once(
        ctx, db, clock, monkeypatch) -> None:
    worker = add_worker(db.sessions, clock.now(), 727)
    silent = crashed_before_dispatch(ctx)
    batch = [report(silent, description=f"pile {i}", dispatch_now=False) for i in range(3)]
    real = dispatcher.dispatch.dispatch_new_case
    changed: list[int] = []

    def meddled(session, ctx_, case) -> None:  # noqa: ANN001 - another writer's change lands mid-batch, once
        if case.id == batch[1].id and not changed:
            changed.append(case.id)  # a raw statement: the batch's own bookkeeping does not see it
            session.execute(sa.text('UPDATE "case" SET version = version + 1 WHERE id = :id'), {"id": case.id})
        real(session, ctx_, case)

    monkeypatch.setattr(dispatcher.dispatch, "dispatch_new_case", meddled)
    assert dispatcher.dispatch_pending(ctx) == 3
    assert changed == [batch[1].id]  # the batch's waiting UPDATE of that case changed no row: it failed whole
    assert [[o.worker_id for o in offers_of(db, case.id)] for case in batch] == [[worker]] * 3
    with db.sessions() as s:
        assert {s.get(Case, case.id).status for case in batch} == {Status.DISPATCHED}
    assert len(queued(db.sessions, 727)) == 3 and waiting(db) == []


def test_a_case_handled_by_hand_before_the_dispatcher_ran_is_left_alone(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 730)
    case = report(crashed_before_dispatch(ctx), dispatch_now=False)
    cases.apply_action(ctx, case_id=case.id, action=Action.CANCEL, actor=Actor(Role.DISPATCHER),
                       note="duplicate of a hotline case")
    assert dispatcher.dispatch_pending(ctx) == 1
    assert offers_of(db, case.id) == [] and waiting(db) == []
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.CANCELLED
