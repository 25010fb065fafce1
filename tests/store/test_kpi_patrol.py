"""主动发现 in the KPIs: the patrol share of an area, of each grid and of each worker, on a hand-built data set.

The expected figures are counted by hand from the rows below (see the docstring of `data`), not taken
from services/kpi_patrol.py's output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.lifecycle import Status
from models.tables import Case, CaseSource
from services import kpi
from services.db import transaction
from tests.worker_support import GRID, OTHER_GRID, STREET, add_person, make_ctx

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
FAR_GRID = "SH-HP-02-001"  # another street


def _case(s, n: int, grid: str, source: CaseSource, status: Status, *, created=T0 + H,
          reporter: int | None = None, handler: int | None = None) -> None:
    s.add(Case(number=f"P-{n}", source=source, category_code="exposed_garbage", lat=31.2, lon=121.4, grid_code=grid,
               status=status, reporter_id=reporter, handler_id=handler, created_at=created, updated_at=created,
               handle_due_at=created + D, accept_due_at=created + H))


@pytest.fixture
def data(db, clock, tmp_path) -> dict[str, int]:
    """Ten cases; the period is [T0, T0 + 7 days).

    In street SH-HP-01, registered in the period (7 cases):
      1 GRID        patrol   found by Wang, handled by Wang (kept), closed
      2 GRID        patrol   found by Wang, handled by Chen (Wang handed it to dispatch)
      3 GRID        resident handled by Wang
      4 OTHER_GRID  patrol   found by Chen, handled by Chen
      5 OTHER_GRID  resident handled by Zhao
      6 OTHER_GRID  resident nobody yet (registered)
      10 GRID       camera   taken over by the supervisor Boss (not a worker: not listed per worker)
    Not counted: 7 (GRID, patrol by Wang, cancelled), 8 (another street, patrol by Chen),
    9 (GRID, patrol by Chen, registered the day before the period).
    """
    make_ctx(db.sessions, clock, tmp_path)
    now = T0
    wang = add_person(db.sessions, now, telegram_user_id=8101, roles=["worker"], name="Wang")
    chen = add_person(db.sessions, now, telegram_user_id=8102, roles=["worker"], name="Chen")
    zhao = add_person(db.sessions, now, telegram_user_id=8103, roles=["worker"], name="Zhao")
    boss = add_person(db.sessions, now, telegram_user_id=8104, roles=["supervisor"], name="Boss")
    resident = add_person(db.sessions, now, telegram_user_id=8105, roles=["resident"], name="Resident")
    with transaction(db.sessions) as s:
        _case(s, 1, GRID, CaseSource.PATROL, Status.CLOSED, reporter=wang, handler=wang)
        _case(s, 2, GRID, CaseSource.PATROL, Status.IN_PROGRESS, reporter=wang, handler=chen)
        _case(s, 3, GRID, CaseSource.RESIDENT, Status.IN_PROGRESS, reporter=resident, handler=wang)
        _case(s, 4, OTHER_GRID, CaseSource.PATROL, Status.IN_PROGRESS, reporter=chen, handler=chen)
        _case(s, 5, OTHER_GRID, CaseSource.RESIDENT, Status.IN_PROGRESS, reporter=resident, handler=zhao)
        _case(s, 6, OTHER_GRID, CaseSource.RESIDENT, Status.REGISTERED, reporter=resident)
        _case(s, 7, GRID, CaseSource.PATROL, Status.CANCELLED, reporter=wang)
        _case(s, 8, FAR_GRID, CaseSource.PATROL, Status.IN_PROGRESS, reporter=chen, handler=chen)
        _case(s, 9, GRID, CaseSource.PATROL, Status.IN_PROGRESS, created=T0 - D, reporter=chen, handler=chen)
        _case(s, 10, GRID, CaseSource.CAMERA, Status.IN_PROGRESS, handler=boss)
    return {"wang": wang, "chen": chen, "zhao": zhao}


def test_patrol_share_of_a_street_its_grids_and_its_workers(db, data) -> None:
    with db.sessions() as s:
        k = kpi.compute(s, area_code=STREET, start=T0, end=T0 + 7 * D, now=T0 + 7 * D)
    # Cases 1, 2 and 4 of the 7 registered were found on patrol.
    assert (k.registered, k.patrol) == (7, 3)
    assert k.patrol_share == pytest.approx(3 / 7)
    # GRID: 1, 2, 3, 10 registered, 1 and 2 on patrol; OTHER_GRID: 4, 5, 6, with 4 on patrol.
    assert [(g.grid_code, g.registered, g.patrol) for g in k.patrol_grids] == [(GRID, 4, 2), (OTHER_GRID, 3, 1)]
    assert [g.share for g in k.patrol_grids] == [pytest.approx(0.5), pytest.approx(1 / 3)]
    # Wang found 1 and 2 and handles 1 and 3: 2 of {1, 2, 3}. Chen found 4 and handles 2 and 4: 1 of {2, 4}.
    # Zhao found nothing and handles 5: 0 of 1. Boss is a supervisor, not listed.
    assert [(w.person_id, w.name, w.found, w.cases) for w in k.patrol_workers] == [
        (data["wang"], "Wang", 2, 3), (data["chen"], "Chen", 1, 2), (data["zhao"], "Zhao", 0, 1)]
    assert [w.share for w in k.patrol_workers] == [pytest.approx(2 / 3), pytest.approx(0.5), 0.0]


def test_patrol_share_of_one_grid_counts_only_that_grids_cases(db, data) -> None:
    with db.sessions() as s:
        k = kpi.compute(s, area_code=OTHER_GRID, start=T0, end=T0 + 7 * D, now=T0 + 7 * D)
        empty = kpi.compute(s, area_code=STREET, start=T0 + 20 * D, end=T0 + 21 * D, now=T0 + 21 * D)
    assert (k.registered, k.patrol, k.patrol_share) == (3, 1, pytest.approx(1 / 3))
    # Chen's case 2 lies in GRID, outside this area: here Chen has found 1 of 1.
    assert [(w.name, w.found, w.cases, w.share) for w in k.patrol_workers] == [("Chen", 1, 1, 1.0), ("Zhao", 0, 1, 0.0)]
    assert (empty.patrol, empty.patrol_share, empty.patrol_grids, empty.patrol_workers) == (0, None, [], [])
