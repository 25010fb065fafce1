"""KPIs on a hand-built data set equal the values computed by hand (see each comment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.lifecycle import Action, Role, Status
from models.resident import CaseFeedback
from models.supervision import Extension, ExtensionStatus
from models.tables import Case, CaseEvent, CaseSource
from services import kpi
from services.db import transaction
from tests.worker_support import GRID, STREET, add_person, make_ctx

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def _case(s, n: int, grid: str, status: Status, created, due, closed=None) -> Case:
    case = Case(number=f"T-{n}", source=CaseSource.RESIDENT, category_code="exposed_garbage", lat=31.2, lon=121.4,
                grid_code=grid, status=status, created_at=created, updated_at=closed or created,
                handle_due_at=due, accept_due_at=created + H, closed_at=closed)
    s.add(case)
    s.flush()
    return case


def _event(s, case: Case, action: Action, at) -> None:
    s.add(CaseEvent(case_id=case.id, actor_role=Role.WORKER, action=action, from_status=Status.DISPATCHED,
                    to_status=Status.IN_PROGRESS, at=at))


@pytest.fixture
def data(db, clock, tmp_path):
    make_ctx(db.sessions, clock, tmp_path)
    person = add_person(db.sessions, T0, telegram_user_id=7001, roles=["resident"])
    with transaction(db.sessions) as s:
        a = _case(s, 1, GRID, Status.CLOSED, T0 + H, T0 + 10 * H, T0 + 5 * H)  # on time
        _event(s, a, Action.ACCEPT, T0 + 2 * H)
        b = _case(s, 2, GRID, Status.CLOSED, T0 + D, T0 + 2 * D, T0 + 3 * D)  # late, reworked, extended
        _event(s, b, Action.ACCEPT, T0 + D + 4 * H)
        _event(s, b, Action.REJECT, T0 + D + 8 * H)
        s.add(Extension(case_id=b.id, reason="part", working_minutes=480, status=ExtensionStatus.GRANTED,
                        requested_at=T0 + D + 5 * H))
        _case(s, 3, "SH-HP-01-002", Status.DISPATCHED, T0 + 2 * D, T0 + 3 * D)  # open, overdue at the end
        _case(s, 4, "SH-HP-02-001", Status.CLOSED, T0 + H, T0 + 2 * H, T0 + 3 * H)  # another street: not counted
        _case(s, 5, GRID, Status.CANCELLED, T0 + H, T0 + 2 * H)  # cancelled: not counted
        s.add(CaseFeedback(case_id=a.id, person_id=person, closed_at=a.closed_at, asked_at=a.closed_at, fixed=True,
                           answered_at=T0 + 6 * H, rating=5, rated_at=T0 + 6 * H))
        s.add(CaseFeedback(case_id=b.id, person_id=person, closed_at=b.closed_at, asked_at=b.closed_at, fixed=True,
                           answered_at=T0 + 4 * D, rating=2, rated_at=T0 + 4 * D))


def test_kpis_match_hand_computed_values(db, data) -> None:
    with db.sessions() as s:
        k = kpi.compute(s, area_code=STREET, start=T0, end=T0 + 7 * D, now=T0 + 7 * D)
    assert (k.registered, k.closed, k.due, k.closed_of_due) == (3, 2, 3, 2)
    assert k.closure_rate == pytest.approx(2 / 3)
    assert k.on_time_rate == 0.5 and k.rework_rate == 0.5 and k.extension_rate == 0.5
    assert k.accept_mean_h == pytest.approx(2.5) and k.accept_p90_h == pytest.approx(4.0)  # 1 h and 4 h
    assert k.close_mean_h == pytest.approx(26.0) and k.close_p90_h == pytest.approx(48.0)  # 4 h and 48 h
    assert k.satisfaction_mean == 3.5 and k.dissatisfaction_rate == 0.5
    assert [(g.grid_code, g.open_overdue, g.due, g.closed_of_due) for g in k.worst_grids] == [
        ("SH-HP-01-002", 1, 1, 0), (GRID, 0, 2, 2)]


def test_kpis_of_a_grid_and_of_an_empty_period(db, data) -> None:
    with db.sessions() as s:
        k = kpi.compute(s, area_code="SH-HP-02-001", start=T0, end=T0 + 7 * D, now=T0 + 7 * D)
        empty = kpi.compute(s, area_code=STREET, start=T0 + 20 * D, end=T0 + 21 * D, now=T0 + 21 * D)
    assert (k.registered, k.closed, k.on_time_rate) == (1, 1, 0.0)
    assert empty.closure_rate is None and empty.satisfaction_mean is None and empty.accept_p90_h is None
