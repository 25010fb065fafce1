"""Spot checks of silent grids on a real store (SQLite and PostgreSQL), driven by the fake clock."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlmodel import select

from models.supervision import SpotCheck, SpotCheckRound, SpotCheckStatus, SupervisorTopic
from models.tables import Area, Case
from services import spot_checks
from services.db import make_engine, make_session_factory, transaction
from services.spot_checks import AnswerOutcome, AnswerProblem
from services.working_time import calendar_of
from tests.worker_support import (
    GRID,
    OTHER_GRID,
    STREET,
    add_supervisor,
    add_worker,
    make_ctx,
    picture,
    point_in,
    queued,
    report,
)

GRID_C, GRID_D, FAR_GRID = "SH-HP-01-003", "SH-HP-01-004", "SH-HP-02-005"
WORKERS = {GRID: 601, OTHER_GRID: 602, GRID_C: 603, GRID_D: 604}
GRID_SUP, STREET_SUP = 611, 612
MONDAY = date(2026, 11, 23)  # a working day; 08:00 in Shanghai is 00:00 UTC
SPOT = dict(spot_check_seed="alpha", spot_check_sample=2, spot_check_rounds_per_day=1, spot_check_answer_minutes=30,
            spot_check_silent_days=7)
TWO_ROUNDS = {**SPOT, "spot_check_rounds_per_day": 2}


@pytest.fixture
def ctx(db, clock, tmp_path):
    clock.set(datetime(2026, 11, 23, 0, 0, tzinfo=UTC))
    ctx = make_ctx(db.sessions, clock, tmp_path, **SPOT)
    now = clock.now()
    for grid, user in WORKERS.items():
        add_worker(db.sessions, now, user, area_code=grid, name=f"Worker {grid[-3:]}")
    add_supervisor(db.sessions, now, GRID_SUP, area_code=GRID, name="Grid boss")
    add_supervisor(db.sessions, now, STREET_SUP, area_code=STREET, name="Street boss")
    return ctx


def with_settings(ctx, **changes):  # noqa: ANN001, ANN201
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=changes))


def checks(db) -> list[SpotCheck]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(SpotCheck).order_by(SpotCheck.id)).all())


def texts(db, chat_id: int) -> list[str]:  # noqa: ANN001
    return [n.payload["text"] for n in queued(db.sessions, chat_id, "sendMessage")]


def spot_texts(db, chat_id: int) -> list[str]:  # noqa: ANN001
    return [t for t in texts(db, chat_id) if "spot check" in t.lower()]


def start_round(ctx, clock, number: int = 0) -> list[SpotCheck]:  # noqa: ANN001
    """Move the clock to round `number` of Monday and tick; the checks it made."""
    plan = spot_checks.plan_day(ctx, MONDAY)
    clock.set(plan[number].due_at)
    spot_checks.tick(ctx)
    with ctx.sessions() as s:
        return list(s.exec(select(SpotCheck).where(SpotCheck.requested_at == plan[number].due_at)
                           .order_by(SpotCheck.id)).all())


def only_grid(db, ctx, grid: str) -> None:  # noqa: ANN001
    """Make `grid` the only silent grid: every other staffed grid gets a case now."""
    for other in WORKERS:
        if other != grid:
            report(ctx, grid=other)


def user_of(check: SpotCheck) -> int:
    return next(u for g, u in WORKERS.items() if g == check.grid_code)


# -- the draw ------------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_times_and_grids(ctx, db, clock) -> None:
    ctx = with_settings(ctx, spot_check_rounds_per_day=2)
    plan = spot_checks.plan_day(ctx, MONDAY)
    seed = spot_checks.day_seed("alpha", MONDAY)
    calendar = calendar_of(ctx)
    assert [r.seed for r in plan] == [seed, seed]
    assert [r.due_at for r in plan] == spot_checks.round_times(seed, MONDAY, calendar, rounds=2, answer_minutes=30)
    assert spot_checks.plan_day(ctx, MONDAY) == plan  # stored: asked again, the same plan
    with db.sessions() as s:
        expected = spot_checks.draw_sample(s, ctx, seed=f"{seed}:0", now=plan[0].due_at)
        again = spot_checks.draw_sample(s, ctx, seed=f"{seed}:0", now=plan[0].due_at)
    assert expected == again and len(expected) == 2
    # Other seeds draw other times and other grids (not every time, but across a few seeds surely).
    others = {tuple(spot_checks.round_times(spot_checks.day_seed(f"seed-{i}", MONDAY), MONDAY, calendar, rounds=2,
                                            answer_minutes=30)) for i in range(8)}
    assert len(others) > 1
    with db.sessions() as s:
        samples = {tuple(p.grid_code for p in spot_checks.draw_sample(s, ctx, seed=f"other-{i}", now=plan[0].due_at))
                   for i in range(12)}
    assert len(samples) > 1
    made = start_round(ctx, clock, 0)
    assert [(c.grid_code, c.worker_id) for c in made] == [(p.grid_code, p.worker_id) for p in expected]
    assert {c.seed for c in made} == {f"{seed}:0"}


def test_a_public_holiday_and_a_weekend_have_no_round(ctx, db, clock) -> None:
    calendar = calendar_of(ctx)
    for day in (date(2026, 10, 1), date(2026, 11, 22)):  # National Day; a Sunday
        assert spot_checks.round_times("x", day, calendar, rounds=3, answer_minutes=30) == []
        clock.set(datetime.combine(day, datetime.min.time(), calendar.tz).astimezone(UTC) + timedelta(hours=10))
        for _ in range(3):
            clock.advance(hours=1)
            assert spot_checks.tick(ctx) == 0
    with db.sessions() as s:
        assert s.exec(select(SpotCheckRound)).all() == []
    assert checks(db) == []


def test_grids_with_a_recent_case_are_never_chosen(ctx, db, clock) -> None:
    clock.advance(days=-3)
    report(ctx, grid=OTHER_GRID)  # three days before Monday: within N = 7 days
    clock.advance(days=-10)
    report(ctx, grid=GRID_C)  # long ago: the grid is silent again
    wide = with_settings(ctx, spot_check_sample=10)
    made = start_round(wide, clock)
    assert sorted(c.grid_code for c in made) == [GRID, GRID_C, GRID_D]
    assert OTHER_GRID not in {c.grid_code for c in checks(db)}


def test_a_grid_with_nobody_on_duty_escalates_at_once(ctx, db, clock) -> None:
    import sqlalchemy as sa

    from models.tables import Person

    only_grid(db, ctx, GRID_D)
    with db.engine.begin() as conn:
        conn.execute(sa.update(Person).where(Person.telegram_user_id == WORKERS[GRID_D]).values(on_duty=False))
    [check] = start_round(ctx, clock)
    assert (check.grid_code, check.status, check.worker_id) == (GRID_D, SpotCheckStatus.NOBODY, None)
    assert check.escalated_at == clock.now()
    [ping] = spot_texts(db, STREET_SUP)
    assert ping.startswith("🔍 Spot check: nobody on duty in grid")
    assert spot_texts(db, WORKERS[GRID_D]) == []


# -- answering -----------------------------------------------------------------------------------------


def test_success_with_a_fresh_photo_and_a_live_location_inside_the_grid(ctx, db, clock) -> None:
    only_grid(db, ctx, GRID)
    [check] = start_round(ctx, clock)
    [request] = spot_texts(db, WORKERS[GRID])
    assert request.startswith("🔍 Spot check of grid")
    assert "within 30 min" in request and "Share My Live Location" in request
    assert request.endswith("send /cancel first: until then your photo and location count for the order.")
    clock.advance(minutes=10)
    result = spot_checks.record_photo(ctx, worker_id=check.worker_id, data=picture(1), message_date=clock.now())
    assert result.outcome is AnswerOutcome.WAITING_FOR_LOCATION
    lat, lon = point_in(GRID)
    result = spot_checks.record_location(ctx, worker_id=check.worker_id, lat=lat, lon=lon, live_period=900,
                                         forwarded=False, accuracy_m=15, message_date=clock.now(), message_id=77)
    assert result.outcome is AnswerOutcome.PASSED
    [stored] = checks(db)
    assert stored.status == SpotCheckStatus.PASSED and stored.live and stored.photo_path
    assert stored.finished_at == clock.now() and stored.escalated_at is None
    assert spot_texts(db, WORKERS[GRID])[-1].startswith("✅ Spot check of grid")
    clock.advance(hours=1)
    spot_checks.tick(ctx)
    assert spot_texts(db, GRID_SUP) == [] and spot_texts(db, STREET_SUP) == []


def test_refused_answers_can_be_retried_then_fail_at_the_deadline(ctx, db, clock) -> None:
    only_grid(db, ctx, GRID)
    [check] = start_round(ctx, clock)
    worker = check.worker_id
    lat, lon = point_in(GRID)
    far_lat, far_lon = point_in(FAR_GRID)
    now = clock.now()
    forwarded = spot_checks.record_photo(ctx, worker_id=worker, data=picture(2), message_date=now, forwarded=True)
    assert forwarded.problems == (AnswerProblem.FORWARDED,)
    old = spot_checks.record_photo(ctx, worker_id=worker, data=picture(3), message_date=now - timedelta(minutes=20))
    assert old.problems == (AnswerProblem.STALE,)
    outside = spot_checks.record_location(ctx, worker_id=worker, lat=far_lat, lon=far_lon, live_period=600,
                                          forwarded=False, accuracy_m=10, message_date=now)
    assert outside.outcome is AnswerOutcome.REFUSED and outside.problems == (AnswerProblem.OUTSIDE_GRID,)
    static = spot_checks.record_location(ctx, worker_id=worker, lat=lat, lon=lon, live_period=None,
                                         forwarded=False, accuracy_m=10, message_date=now)
    assert static.problems == (AnswerProblem.NOT_LIVE,)
    assert checks(db)[0].status == SpotCheckStatus.PENDING  # still time to try again
    clock.advance(minutes=31)
    assert spot_checks.tick(ctx) == 1
    [stored] = checks(db)
    assert stored.status == SpotCheckStatus.FAILED and stored.escalated_at == clock.now()
    assert stored.note == "photo:stale; location:not_live"
    [ping] = spot_texts(db, GRID_SUP)  # the grid's own supervisor; the street is not bothered
    assert ping.startswith("🔍 Spot check failed in grid")
    assert "Worker: Worker 001" in ping
    assert "What went wrong: the photo was not sent at once, the location was not live" in ping
    assert spot_texts(db, STREET_SUP) == []
    assert spot_texts(db, WORKERS[GRID])[-1].startswith("❌ The spot check of grid")
    clock.advance(minutes=5)
    assert spot_checks.tick(ctx) == 0
    assert len(spot_texts(db, GRID_SUP)) == 1


def test_silence_pings_the_supervisor_once(ctx, db, clock) -> None:
    only_grid(db, ctx, OTHER_GRID)  # no supervisor of its own: the street's is the grid supervisor
    [check] = start_round(ctx, clock)
    clock.advance(minutes=30)
    assert spot_checks.tick(ctx) == 0  # due at this very minute: still the worker's time
    clock.advance(seconds=1)
    assert spot_checks.tick(ctx) == 1
    [stored] = checks(db)
    assert stored.status == SpotCheckStatus.SILENT and stored.note == "no_answer"
    [ping] = spot_texts(db, STREET_SUP)
    assert ping.startswith("🔍 Spot check: no answer from grid")
    assert "What went wrong: nothing was sent" in ping
    for _ in range(3):
        clock.advance(minutes=7)
        spot_checks.tick(ctx)
    assert len(spot_texts(db, STREET_SUP)) == 1
    # An answer after the end changes nothing and is told so.
    late = spot_checks.record_photo(ctx, worker_id=check.worker_id, data=picture(4), message_date=clock.now())
    assert late.outcome is AnswerOutcome.NO_CHECK


def test_silence_also_reaches_the_supervisor_groups_topic_of_the_grid(ctx, db, clock) -> None:
    group = -100_777
    with transaction(db.sessions) as s:
        street = s.exec(select(Area).where(Area.code == STREET)).one()
        street.supervisor_chat_id = group
        s.add(street)
        s.add(SupervisorTopic(chat_id=group, area_code=OTHER_GRID, message_thread_id=42))
    only_grid(db, ctx, OTHER_GRID)
    start_round(ctx, clock)
    clock.advance(minutes=31)
    assert spot_checks.tick(ctx) == 1
    [ping] = queued(db.sessions, group, "sendMessage")
    assert ping.payload["message_thread_id"] == 42
    assert ping.payload["text"].startswith("🔍 抽查：网格") and "未回复" in ping.payload["text"]  # the city's language
    assert len(spot_texts(db, STREET_SUP)) == 1  # the supervisor in person too


def test_an_answer_after_the_deadline_finishes_the_check_at_once(ctx, db, clock) -> None:
    only_grid(db, ctx, GRID)
    [check] = start_round(ctx, clock)
    clock.advance(minutes=45)  # the tick has not run yet
    lat, lon = point_in(GRID)
    result = spot_checks.record_location(ctx, worker_id=check.worker_id, lat=lat, lon=lon, live_period=900,
                                         forwarded=False, accuracy_m=5, message_date=clock.now())
    assert result.outcome is AnswerOutcome.LATE and result.status == SpotCheckStatus.SILENT
    assert spot_texts(db, WORKERS[GRID])[-1].startswith("⏰ The spot check of grid")
    assert len(spot_texts(db, GRID_SUP)) == 1
    assert spot_checks.tick(ctx) == 0 and len(spot_texts(db, GRID_SUP)) == 1


# -- restarts and a second process ---------------------------------------------------------------------------


def test_a_restart_between_rounds_neither_repeats_nor_skips_a_round(ctx, db, clock, tmp_path) -> None:
    ctx = with_settings(ctx, spot_check_rounds_per_day=2)
    plan = spot_checks.plan_day(ctx, MONDAY)
    assert len(start_round(ctx, clock, 0)) == 2
    engine = make_engine(db.url)
    try:  # a new process on the same store
        fresh = make_ctx(make_session_factory(engine), clock, tmp_path, **TWO_ROUNDS)
        assert [(r.due_at, r.seed) for r in spot_checks.plan_day(fresh, MONDAY)] == [(r.due_at, r.seed) for r in plan]
        assert spot_checks.tick(fresh) == 0  # the same minute: round 0 is not started again
        # Down over round 1's time; back 20 minutes later, still in working hours.
        clock.set(plan[1].due_at + timedelta(minutes=20))
        assert calendar_of(ctx).is_working_time(clock.now())
        assert spot_checks.tick(fresh) == 4  # round 0's two checks end silent; round 1 starts, late but once
        assert spot_checks.tick(fresh) == 0 and spot_checks.tick(ctx) == 0
    finally:
        engine.dispose()
    with db.sessions() as s:
        rounds = s.exec(select(SpotCheckRound).order_by(SpotCheckRound.round)).all()
    assert [(r.round, r.checks, r.started_at) for r in rounds] == [(0, 2, plan[0].due_at), (1, 2, clock.now())]
    statuses = [(c.requested_at, c.status) for c in checks(db)]
    assert statuses == [(plan[0].due_at, SpotCheckStatus.SILENT)] * 2 + [(clock.now(), SpotCheckStatus.PENDING)] * 2


def test_two_processes_start_a_round_once(ctx, db, clock, tmp_path) -> None:
    plan = spot_checks.plan_day(ctx, MONDAY)
    clock.set(plan[0].due_at)
    engines = [make_engine(db.url) for _ in range(2)]
    try:
        contexts = [make_ctx(make_session_factory(e), clock, tmp_path, **SPOT) for e in engines]
        barrier = threading.Barrier(2)
        made: list[int] = []

        def run(c) -> None:  # noqa: ANN001
            barrier.wait()
            made.append(spot_checks.tick(c))

        threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for e in engines:
            e.dispose()
    assert sorted(made) == [0, 2]
    assert len(checks(db)) == 2


# -- properties ---------------------------------------------------------------------------------------------


@pytest.fixture
def history(ctx, db, clock):  # noqa: ANN001, ANN201
    """Cases at known times: OTHER_GRID 2 days before Monday, GRID_C 9 days before, GRID_D 20 days before."""
    monday = clock.now()
    for grid, days in ((OTHER_GRID, 2), (GRID_C, 9), (GRID_D, 20)):
        clock.set(monday - timedelta(days=days))
        report(ctx, grid=grid)
    clock.set(monday)
    with db.sessions() as s:
        return [(c.grid_code, c.created_at) for c in s.exec(select(Case)).all()]


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.text(min_size=1, max_size=12), sample=st.integers(0, 5), silent_days=st.integers(1, 30),
       hours=st.integers(0, 9), rounds=st.integers(0, 10), answer=st.integers(1, 240),
       day=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)))
def test_draws_are_silent_bounded_and_within_working_hours(ctx, db, history, seed, sample, silent_days, hours,
                                                           rounds, answer, day) -> None:
    calendar = calendar_of(ctx)
    times = spot_checks.round_times(seed, day, calendar, rounds=rounds, answer_minutes=answer)
    intervals = calendar.intervals_on(day)
    if not calendar.is_working_day(day):
        assert times == []
    assert times == sorted(set(times)) and len(times) <= rounds
    for at in times:  # the whole answer window lies inside one working interval of that day
        assert any(s <= at and at + timedelta(minutes=answer) <= e for s, e in intervals)
        assert at.second == 0 and at.microsecond == 0
    fits = [(s, e) for s, e in intervals if e - s >= timedelta(minutes=answer)]
    if fits and rounds:
        assert times  # a working day with room for an answer window always has its rounds

    now = datetime(2026, 11, 23, 0, 30, tzinfo=UTC) + timedelta(hours=hours)
    since = now - timedelta(days=silent_days)
    busy = {grid for grid, at in history if at >= since}
    silent = set(WORKERS) - busy
    with db.sessions() as s:
        picks = spot_checks.draw_sample(s, with_settings(ctx, spot_check_sample=sample,
                                                         spot_check_silent_days=silent_days), seed=seed, now=now)
    chosen = [p.grid_code for p in picks]
    assert set(chosen) <= silent and len(chosen) == len(set(chosen)) == min(sample, len(silent))
    assert all(p.worker_id is not None for p in picks)  # every worker is on duty here
