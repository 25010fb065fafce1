"""The escalation sweep on a real store (SQLite and PostgreSQL), driven by the fake clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.supervision import EscalationStep
from models.tables import Case, Notification
from services import escalation
from services.db import make_engine, make_session_factory
from tests.worker_support import GRID, STREET, add_supervisor, add_worker, make_ctx, queued, report

WORKER, GRID_SUP, STREET_SUP, DISTRICT_SUP, CITY_SUP = 501, 502, 503, 504, 505


@pytest.fixture
def ctx(db, clock, tmp_path):
    ctx = make_ctx(db.sessions, clock, tmp_path)
    working_units(db)
    now = clock.now()
    add_worker(db.sessions, now, WORKER)
    add_supervisor(db.sessions, now, GRID_SUP, area_code=GRID)
    add_supervisor(db.sessions, now, STREET_SUP, area_code=STREET)
    add_supervisor(db.sessions, now, DISTRICT_SUP, area_code="SH-HP")
    add_supervisor(db.sessions, now, CITY_SUP, area_code="SH")
    return ctx


def working_units(db) -> None:
    """Deadlines of every category in working time (the default catalogue counts around the clock)."""
    import sqlalchemy as sa

    from models.tables import Category

    with db.engine.begin() as conn:
        conn.execute(sa.update(Category).values(accept_sla_unit="minutes", handle_sla_unit="minutes"))


def pings(db, chat_id: int) -> list[str]:
    return [n.payload["text"] for n in queued(db.sessions, chat_id, "sendMessage")
            if "deadline passed" in n.payload["text"] or "not accepted in time" in n.payload["text"]]


def steps(db) -> list[tuple[str, int]]:
    with db.sessions() as s:
        return [(r.step, r.case_id) for r in s.exec(select(EscalationStep).order_by(EscalationStep.id)).all()]


def test_deadlines_follow_the_working_calendar(ctx, clock) -> None:
    # Saturday 21 Nov 2026, 10:00 in Shanghai: the clock starts on Monday at 08:30.
    case = report(ctx)
    # exposed_garbage: accept in 60 working minutes, handle in 1440 (three 8-hour working days).
    assert case.accept_due_at == datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # Mon 09:30 local
    assert case.handle_due_at == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # Wed 17:30 local
    assert case.next_escalation_at == case.accept_due_at


def test_full_ladder_each_step_exactly_once(ctx, db, clock) -> None:
    case = report(ctx)
    assert escalation.sweep(ctx).fired == 0
    clock.set(case.accept_due_at + timedelta(seconds=1))
    assert escalation.sweep(ctx).fired == 1
    assert escalation.sweep(ctx).fired == 0  # the same tick again: nothing twice
    assert len(pings(db, WORKER)) == 1 and pings(db, GRID_SUP) == []
    clock.advance(minutes=15)
    escalation.sweep(ctx)
    assert len(pings(db, GRID_SUP)) == 1
    clock.set(case.handle_due_at + timedelta(seconds=1))
    escalation.sweep(ctx)
    assert len(pings(db, STREET_SUP)) == 1
    assert "late by" not in pings(db, STREET_SUP)[0] or "Handle by" in pings(db, STREET_SUP)[0]
    clock.advance(hours=2)
    escalation.sweep(ctx)
    assert len(pings(db, DISTRICT_SUP)) == 1
    clock.advance(days=1)
    escalation.sweep(ctx)
    escalation.sweep(ctx)
    assert len(pings(db, CITY_SUP)) == 1
    assert [s for s, _ in steps(db)] == ["accept_worker", "accept_grid", "handle_street", "handle_district",
                                         "handle_city"]
    with db.sessions() as s:
        assert s.get(Case, case.id).next_escalation_at is None


def test_catch_up_after_downtime_takes_each_missed_step_once(ctx, db, clock) -> None:
    case = report(ctx)
    clock.set(case.handle_due_at + timedelta(days=3))  # the process was down for days
    result = escalation.sweep(ctx)
    assert result.fired == 5
    assert escalation.sweep(ctx).fired == 0
    assert len(pings(db, CITY_SUP)) == 1 and len(pings(db, WORKER)) == 1


def test_restart_in_the_middle_keeps_steps_exactly_once(ctx, db, clock, tmp_path) -> None:
    case = report(ctx)
    clock.set(case.accept_due_at + timedelta(minutes=20))
    escalation.sweep(ctx)
    # A new process: a fresh engine and context on the same store.
    engine = make_engine(db.url)
    try:
        fresh = make_ctx(make_session_factory(engine), clock, tmp_path)
        working_units(db)
        assert escalation.sweep(fresh).fired == 0
        clock.set(case.handle_due_at + timedelta(minutes=1))
        assert escalation.sweep(fresh).fired == 1
    finally:
        engine.dispose()
    assert [s for s, _ in steps(db)] == ["accept_worker", "accept_grid", "handle_street"]


def test_unacknowledged_pings_repeat_and_acknowledged_stop(ctx, db, clock) -> None:
    case = report(ctx)
    clock.set(case.accept_due_at + timedelta(minutes=16))
    escalation.sweep(ctx)
    assert len(pings(db, GRID_SUP)) == 1
    clock.advance(minutes=61)
    assert escalation.sweep(ctx).repeated == 1
    assert "Reminder 1" in pings(db, GRID_SUP)[-1]
    clock.advance(hours=5)  # several intervals missed: one reminder, not five
    assert escalation.sweep(ctx).repeated >= 1
    grid_before = len(pings(db, GRID_SUP))
    with db.sessions() as s:
        step = s.exec(select(EscalationStep).where(EscalationStep.step == "accept_grid")).one()
    from tests.worker_support import add_supervisor as _  # noqa: F401
    with db.sessions() as s:
        sup_id = s.exec(select(Notification.person_id).where(Notification.chat_id == GRID_SUP)).first()
    escalation.acknowledge(ctx, case_id=case.id, step_id=step.id, supervisor_id=sup_id)
    clock.advance(hours=3)
    escalation.sweep(ctx)
    assert len(pings(db, GRID_SUP)) == grid_before


def test_case_accepted_in_time_gets_no_accept_pings(ctx, db, clock) -> None:
    from services import work
    from models.work import WorkOffer

    case = report(ctx)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id)).first()
    work.accept_offer(ctx, offer_id=offer.id, worker_id=offer.worker_id)
    clock.set(case.accept_due_at + timedelta(hours=1))
    assert escalation.sweep(ctx).fired == 0
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS


@pytest.mark.postgres
def test_two_sweeps_racing_on_postgresql_ping_once(ctx, db, clock, tmp_path) -> None:
    if db.kind != "postgresql":
        pytest.skip("the race needs two connections to one PostgreSQL database")
    cases = [report(ctx) for _ in range(12)]
    clock.set(max(c.handle_due_at for c in cases) + timedelta(days=2))
    engines = [make_engine(db.url) for _ in range(2)]
    contexts = [make_ctx(make_session_factory(e), clock, tmp_path) for e in engines]
    working_units(db)
    results, barrier = [], threading.Barrier(2)

    def run(c) -> None:
        barrier.wait()
        results.append(escalation.sweep(c, limit=3))

    threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert sum(r.fired for r in results) == 12 * 5
    taken = steps(db)
    assert len(taken) == len(set(taken)) == 12 * 5
    assert len(pings(db, CITY_SUP)) == 12
