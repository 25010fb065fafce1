"""The spot-check service publishes what happened as events with the right fields (a real EventBus whose
table records every staff event it is given; no channel renderer runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.events import Event
from models.events.staff import (
    AnswerKind,
    AnswerOutcome,
    AnswerProblem,
    SpotCheckAnswerJudged,
    SpotCheckFailed,
    SpotCheckPassed,
    SpotCheckRequested,
)
from models.supervision import SpotCheckStatus
from services import spot_checks
from services.bus import EventBus
from tests.store.test_spot_checks import SPOT, WORKERS, only_grid, start_round
from tests.worker_support import GRID, add_supervisor, add_worker, make_ctx, picture, point_in, queued

STAFF_EVENTS = (SpotCheckRequested, SpotCheckAnswerJudged, SpotCheckPassed, SpotCheckFailed)


@pytest.fixture
def recorded() -> list[Event]:
    return []


@pytest.fixture
def ctx(db, clock, tmp_path, recorded):  # noqa: ANN001, ANN201
    clock.set(datetime(2026, 11, 23, 0, 0, tzinfo=UTC))
    ctx = make_ctx(db.sessions, clock, tmp_path, **SPOT)
    ctx.bus = EventBus({kind: [lambda _s, _c, event: recorded.append(event)] for kind in STAFF_EVENTS})
    now = clock.now()
    for grid, user in WORKERS.items():
        add_worker(db.sessions, now, user, area_code=grid, name=f"Worker {grid[-3:]}")
    add_supervisor(db.sessions, now, 611, area_code=GRID, name="Grid boss")
    return ctx


def test_a_round_answers_and_the_end_publish_their_events(ctx, db, clock, recorded) -> None:
    only_grid(db, ctx, GRID)
    [check] = start_round(ctx, clock)
    asked = clock.now()
    assert recorded == [SpotCheckRequested(check_id=check.id, grid_code=GRID, worker_id=check.worker_id,
                                           due_at=asked + timedelta(minutes=30), answer_minutes=30)]
    # The events replace the messages: with no renderer in the table, nobody is told anything.
    assert queued(db.sessions, WORKERS[GRID], "sendMessage") == []

    clock.advance(minutes=2)
    spot_checks.record_photo(ctx, worker_id=check.worker_id, data=picture(7), message_date=clock.now(), forwarded=True)
    lat, lon = point_in(GRID)
    spot_checks.record_location(ctx, worker_id=check.worker_id, lat=lat, lon=lon, live_period=None,
                                forwarded=False, accuracy_m=10, message_date=clock.now(), message_id=5)
    spot_checks.record_location(ctx, worker_id=check.worker_id, lat=lat, lon=lon, live_period=900,
                                forwarded=False, accuracy_m=10, message_date=clock.now(), message_id=6,
                                live_update=True)
    due = asked + timedelta(minutes=30)
    common = dict(check_id=check.id, grid_code=GRID, worker_id=check.worker_id, due_at=due)
    assert recorded[1:] == [
        SpotCheckAnswerJudged(**common, kind=AnswerKind.PHOTO, outcome=AnswerOutcome.REFUSED,
                              problems=(AnswerProblem.FORWARDED,), age_s=0.0),
        SpotCheckAnswerJudged(**common, kind=AnswerKind.LOCATION, outcome=AnswerOutcome.REFUSED,
                              problems=(AnswerProblem.NOT_LIVE,), accuracy_m=10.0),
        SpotCheckAnswerJudged(**common, kind=AnswerKind.LIVE_UPDATE, outcome=AnswerOutcome.WAITING_FOR_PHOTO,
                              newly_accepted=True, accuracy_m=10.0),
    ]
    spot_checks.record_photo(ctx, worker_id=check.worker_id, data=picture(8), message_date=clock.now())
    assert recorded[-1] == SpotCheckPassed(**common)


def test_a_silent_check_publishes_its_failure_once(ctx, db, clock, recorded) -> None:
    only_grid(db, ctx, GRID)
    [check] = start_round(ctx, clock)
    asked = clock.now()
    clock.advance(minutes=31)
    assert spot_checks.tick(ctx) == 1
    assert spot_checks.tick(ctx) == 0
    failures = [e for e in recorded if isinstance(e, SpotCheckFailed)]
    assert failures == [SpotCheckFailed(check_id=check.id, grid_code=GRID, worker_id=check.worker_id,
                                        status=SpotCheckStatus.SILENT, requested_at=asked,
                                        due_at=asked + timedelta(minutes=30), reasons=("no_answer",))]
