"""Every scheduled store job runs once across processes (onegrid/jobs.py, services/job_lease.py).

Two "processes" here are two engines on one store, each with its own scheduler callables built by
the real `add_jobs`, ticking the same job at the same moment from two threads (on PostgreSQL that is
two backends racing; SQLite serialises them). Real jobs run on real rows: the digest a supervisor
gets, the spot checks a worker gets.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import select

from models.scale import JobLease
from models.supervision import DigestRun, SpotCheck
from models.tables import Notification
from onegrid.jobs import add_jobs
from services import spot_checks
from services.db import make_engine, make_session_factory
from services.job_lease import process_name, run_exclusive
from tests.worker_support import GRID, STREET, add_supervisor, add_worker, make_ctx

MONDAY_8AM = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, a working day
DIGEST_TIME = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
SUP, WORKER = 901, 902
STORE_JOBS = ["resident_sweep", "idempotency_purge", "pending_clears", "escalation_sweep", "daily_digest",
              "spot_checks", "off_duty_handovers", "coverage_gaps", "warnings_campaigns"]


class Recorder:
    """Stands in for APScheduler: keeps the callables `add_jobs` schedules, by job id."""

    def __init__(self) -> None:
        self.jobs: dict[str, Any] = {}

    def add_job(self, fn: Any, _trigger: str, *, id: str, **_kw: Any) -> None:  # noqa: A002 - APScheduler's name
        self.jobs[id] = fn


def process(ctx, engine) -> SimpleNamespace:  # noqa: ANN001
    """One OneGrid process's scheduled jobs, on its own engine."""
    own = replace(ctx, sessions=make_session_factory(engine))
    app = SimpleNamespace(ctx=own, settings=own.settings, holder=process_name(), scheduler=Recorder(),
                          heartbeat=lambda: None)
    add_jobs(app)
    return app


@pytest.fixture
def ctx(db, clock, tmp_path):
    clock.set(MONDAY_8AM)
    ctx = make_ctx(db.sessions, clock, tmp_path / "data", spot_check_seed="beta", spot_check_sample=1,
                   spot_check_rounds_per_day=1, digest_time="18:00")
    add_worker(db.sessions, clock.now(), WORKER, area_code=GRID, name="Worker")
    add_supervisor(db.sessions, clock.now(), SUP, area_code=STREET, name="Boss")
    return ctx


@pytest.fixture
def two(db, ctx):
    engines = [make_engine(db.url) for _ in range(2)]
    yield [process(ctx, e) for e in engines]
    for e in engines:
        e.dispose()


def race(apps: list[SimpleNamespace], job: str) -> list[bool]:
    """Both processes tick `job` at once; whether each ran it."""
    barrier = threading.Barrier(len(apps))
    ran: list[bool] = []
    errors: list[BaseException] = []

    def tick(app: SimpleNamespace) -> None:
        barrier.wait()
        try:
            ran.append(app.scheduler.jobs[job]())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    return ran


def lease(db, job: str) -> JobLease:  # noqa: ANN001
    with db.sessions() as s:
        return s.get(JobLease, job)


def test_the_store_jobs_are_the_ones_with_a_lease(two) -> None:
    scheduled = set(two[0].scheduler.jobs)
    # Per process on purpose: the heartbeat (this process's /health) and this process's grid-map index.
    assert scheduled - set(STORE_JOBS) == {"heartbeat", "grid_map_refresh"}
    assert set(STORE_JOBS) <= scheduled


@pytest.mark.parametrize("job", STORE_JOBS)
def test_two_processes_ticking_together_run_a_job_once_per_period(db, clock, two, job: str) -> None:
    assert sorted(race(two, job)) == [False, True]
    assert lease(db, job).runs == 1
    # The same period, either process: nothing; once the period is over, one of them again.
    clock.advance(seconds=1)
    assert race(two, job) == [False, False]
    period = {"resident_sweep": 60, "idempotency_purge": 600, "pending_clears": 30, "daily_digest": 60,
              "spot_checks": 60, "escalation_sweep": two[0].settings.escalation_sweep_interval_s,
              "off_duty_handovers": 60, "coverage_gaps": two[0].settings.coverage_check_interval_s,
              "warnings_campaigns": 60}[job]
    clock.advance(seconds=period)
    assert sorted(race(two, job)) == [False, True]
    assert lease(db, job).runs == 2


def test_the_digest_goes_once_when_two_processes_tick_at_its_minute(db, clock, two) -> None:
    clock.set(DIGEST_TIME)
    assert sorted(race(two, "daily_digest")) == [False, True]
    clock.advance(minutes=1)
    race(two, "daily_digest")  # the next minute: the lease is free again, the day's record says "sent"
    with db.sessions() as s:
        assert [r.day for r in s.exec(select(DigestRun)).all()] == ["20261123"]
        photos = s.exec(select(Notification).where(Notification.chat_id == SUP,
                                                   Notification.method == "sendPhoto")).all()
    assert len(photos) == 1  # the supervisor's one chart of the day


def test_a_spot_check_round_starts_once_when_two_processes_tick_at_its_time(db, clock, ctx, two) -> None:
    [round0] = spot_checks.plan_day(ctx, MONDAY_8AM.date())
    clock.set(round0.due_at)
    assert sorted(race(two, "spot_checks")) == [False, True]
    clock.advance(minutes=1)
    race(two, "spot_checks")
    with db.sessions() as s:
        checks = s.exec(select(SpotCheck)).all()
        asked = [n for n in s.exec(select(Notification).where(Notification.chat_id == WORKER)).all()
                 if "spot check" in (n.payload.get("text") or n.payload.get("caption") or "").lower()]
    assert [c.worker_id is not None for c in checks] == [True]
    assert len(asked) == 1  # the worker is asked once


def test_a_process_that_dies_mid_run_blocks_the_job_only_until_its_hold_passes(db, clock, two) -> None:
    ctx = two[0].ctx
    period = timedelta(seconds=30)

    class Died(BaseException):
        """Like a SIGKILL: no bookkeeping runs after it."""

    def die() -> None:
        raise Died

    with pytest.raises(Died):
        run_exclusive(ctx, "pending_clears", "dead:1", die, period=period)
    other = two[1].scheduler.jobs["pending_clears"]
    clock.advance(seconds=59)
    assert other() is False  # still held by the dead process (hold: twice the period, at least 30 s)
    clock.advance(seconds=2)
    assert other() is True
    assert lease(db, "pending_clears").holder == two[1].holder


def test_a_failed_run_frees_the_job_at_once(db, clock, two) -> None:
    ctx = two[0].ctx

    def fails() -> None:
        raise RuntimeError("store hiccup")

    with pytest.raises(RuntimeError):
        run_exclusive(ctx, "pending_clears", "p1", fails, period=timedelta(seconds=30))
    assert lease(db, "pending_clears").last_error == "RuntimeError: store hiccup"
    assert two[1].scheduler.jobs["pending_clears"]() is True
