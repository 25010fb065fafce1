"""GET /api/v1/kpis shows 主动发现: the patrol share of the area, of each grid and of each worker.

Three cases of street A, counted by hand: in grid 001 one found on patrol by Wang (he handles it) and one
reported by a resident that Wang handles; in grid 002 one reported by a resident, nobody on it yet.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.lifecycle import Status
from models.tables import Case, CaseSource, Person
from tests.api.conftest import STREET_A

GRID_A1, GRID_A2 = f"{STREET_A}-001", f"{STREET_A}-002"


async def test_kpis_show_the_patrol_share_per_grid_and_per_worker(api) -> None:
    now = api.clock.now()
    created = now - timedelta(days=1)
    with api.ctx.sessions() as s:
        wang = Person(telegram_user_id=9501, display_name="Wang", roles=["worker"], created_at=created)
        resident = Person(telegram_user_id=9502, display_name="Resident", roles=["resident"], created_at=created)
        s.add_all([wang, resident])
        s.flush()
        for number, grid, source, reporter, handler in [("Q-1", GRID_A1, CaseSource.PATROL, wang.id, wang.id),
                                                        ("Q-2", GRID_A1, CaseSource.RESIDENT, resident.id, wang.id),
                                                        ("Q-3", GRID_A2, CaseSource.RESIDENT, resident.id, None)]:
            s.add(Case(number=number, source=source, category_code="exposed_garbage", lat=31.23, lon=121.48,
                       grid_code=grid, status=Status.IN_PROGRESS if handler else Status.REGISTERED,
                       reporter_id=reporter, handler_id=handler, created_at=created, updated_at=created,
                       handle_due_at=now + timedelta(days=1)))
        s.commit()
        wang_id = wang.id
    r = await api.client.get("/api/v1/kpis", params={"period": "7d"}, headers=api.auth("street_a"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["registered"], body["patrol"], body["patrol_share"]) == (3, 1, pytest.approx(1 / 3))
    assert body["patrol_by_grid"] == [
        {"grid_code": GRID_A1, "registered": 2, "patrol": 1, "patrol_share": 0.5},
        {"grid_code": GRID_A2, "registered": 1, "patrol": 0, "patrol_share": 0.0},
    ]
    assert body["patrol_by_worker"] == [
        {"person_id": wang_id, "name": "Wang", "found": 1, "cases": 2, "patrol_share": 0.5}]
