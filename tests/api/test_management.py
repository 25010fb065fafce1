"""The management API: KPIs, people (with worker deactivation) and staff invitations.

KPI figures are computed by hand from a small store built row by row (see `kpi_world`), not
copied from services/kpi.py's output.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlmodel import select

from models.lifecycle import Action, Role, Status
from models.resident import CaseFeedback
from models.supervision import Extension, ExtensionStatus
from models.tables import Case, CaseEvent, CaseSource, Invitation, Person
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services import invitations, work
from services.invitations import InvalidInvitation, InvitationProblem
from tests.api.conftest import STREET_A, STREET_B
from tests.worker_support import add_person, add_supervisor, add_worker, queued

GRID_A1, GRID_A2, GRID_B1 = f"{STREET_A}-001", f"{STREET_A}-002", f"{STREET_B}-001"


# ---------------------------------------------------------------------------- KPIs


def add_case(s, api, number: str, grid: str, status: Status, *, created, handle_due, closed=None) -> Case:  # noqa: ANN001
    case = Case(number=number, source=CaseSource.RESIDENT, category_code="exposed_garbage", lat=31.23, lon=121.48,
                grid_code=grid, status=status, created_at=created, updated_at=closed or created,
                handle_due_at=handle_due, closed_at=closed)
    s.add(case)
    s.flush()
    return case


def add_event(s, case: Case, action: Action, at) -> None:  # noqa: ANN001
    s.add(CaseEvent(case_id=case.id, actor_role=Role.SYSTEM, action=action, to_status=Status.IN_PROGRESS, at=at))


@pytest.fixture
def kpi_world(api) -> dict:
    """Cases of street A (grids 001 and 002) and street B over the ten days up to now.

    t0 = now − 10 days. In street A:
      c1 (grid 001) created t0+1d, accepted +1 h, rejected once, closed +6 h, due t0+2d: on time.
      c2 (grid 001) created t0+2d, accepted +3 h, extension granted, closed t0+4d, due t0+3d: late.
      c3 (grid 002) created t0+3d, accepted +2 h, still in progress, due t0+4d: overdue now.
      c4 (grid 001) created t0−5d (before the period), closed t0+1d, due t0−1d: late.
      c5 (grid 001) cancelled: never counts.
    In street B: c6 created t0+1d, closed +1 h, due t0+2d.
    Feedback: c1 rated 5 and fixed at t0+2d; c2 rated 2 at t0+5d; c4 answered "not fixed" at t0+1d+1h.
    """
    now = api.clock.now()
    t0 = now - timedelta(days=10)
    d, h = timedelta(days=1), timedelta(hours=1)
    with api.ctx.sessions() as s:
        resident = Person(telegram_user_id=9001, display_name="Resident", roles=["resident"], created_at=t0)
        s.add(resident)
        c1 = add_case(s, api, "K-1", GRID_A1, Status.CLOSED, created=t0 + d, handle_due=t0 + 2 * d,
                      closed=t0 + d + 6 * h)
        c2 = add_case(s, api, "K-2", GRID_A1, Status.CLOSED, created=t0 + 2 * d, handle_due=t0 + 3 * d,
                      closed=t0 + 4 * d)
        c3 = add_case(s, api, "K-3", GRID_A2, Status.IN_PROGRESS, created=t0 + 3 * d, handle_due=t0 + 4 * d)
        c4 = add_case(s, api, "K-4", GRID_A1, Status.CLOSED, created=t0 - 5 * d, handle_due=t0 - d, closed=t0 + d)
        add_case(s, api, "K-5", GRID_A1, Status.CANCELLED, created=t0 + d, handle_due=t0 + 2 * d)
        c6 = add_case(s, api, "K-6", GRID_B1, Status.CLOSED, created=t0 + d, handle_due=t0 + 2 * d,
                      closed=t0 + d + h)
        add_event(s, c1, Action.ACCEPT, t0 + d + h)
        add_event(s, c1, Action.REJECT, t0 + d + 3 * h)
        add_event(s, c1, Action.ACCEPT, t0 + d + 4 * h)  # only the first accept counts
        add_event(s, c2, Action.ACCEPT, t0 + 2 * d + 3 * h)
        add_event(s, c3, Action.ACCEPT, t0 + 3 * d + 2 * h)
        s.add(Extension(case_id=c2.id, reason="rain", working_minutes=120, status=ExtensionStatus.GRANTED,
                        requested_at=t0 + 2 * d + 5 * h))
        s.flush()
        s.add(CaseFeedback(case_id=c1.id, person_id=resident.id, closed_at=c1.closed_at, asked_at=c1.closed_at,
                           fixed=True, answered_at=t0 + 2 * d, rating=5, rated_at=t0 + 2 * d))
        s.add(CaseFeedback(case_id=c2.id, person_id=resident.id, closed_at=c2.closed_at, asked_at=c2.closed_at,
                           rating=2, rated_at=t0 + 5 * d))
        s.add(CaseFeedback(case_id=c4.id, person_id=resident.id, closed_at=c4.closed_at, asked_at=c4.closed_at,
                           fixed=False, answered_at=t0 + d + h))
        s.commit()
        del c6
    return {"t0": t0, "now": now}


STREET_A_KPIS = {
    "registered": 3, "closed": 3, "due": 3, "closed_of_due": 2, "closure_rate": pytest.approx(2 / 3),
    "closed_on_time": 1, "on_time_rate": pytest.approx(1 / 3), "reworked": 1, "rework_rate": pytest.approx(1 / 3),
    "extended": 1, "extension_rate": pytest.approx(1 / 3),
    "accept_mean_h": pytest.approx(2.0), "accept_p90_h": pytest.approx(3.0),  # 1, 3, 2 hours
    "close_mean_h": pytest.approx(66.0), "close_p90_h": pytest.approx(144.0),  # 6, 48, 144 hours
    "ratings": 2, "satisfaction_mean": pytest.approx(3.5), "answers": 3, "dissatisfied": 2,
    "dissatisfaction_rate": pytest.approx(2 / 3),
}


async def test_kpis_of_a_street_match_the_hand_counted_figures(api, kpi_world) -> None:
    params = {"area_code": STREET_A, "start": kpi_world["t0"].isoformat(), "end": kpi_world["now"].isoformat()}
    r = await api.client.get("/api/v1/kpis", params=params, headers=api.auth("street_a"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in STREET_A_KPIS} == STREET_A_KPIS
    assert body["area_code"] == STREET_A
    assert body["worst_grids"] == [
        {"grid_code": GRID_A2, "open_overdue": 1, "due": 1, "closed_of_due": 0, "closure_rate": 0.0},
        {"grid_code": GRID_A1, "open_overdue": 0, "due": 2, "closed_of_due": 2, "closure_rate": 1.0},
    ]
    # The key's own area is the default; `end` defaults to now.
    default = await api.client.get("/api/v1/kpis", params={"start": kpi_world["t0"].isoformat()},
                                   headers=api.auth("street_a"))
    assert {k: default.json()[k] for k in STREET_A_KPIS} == STREET_A_KPIS


async def test_the_city_key_defaults_to_the_whole_city_and_periods_are_relative_to_now(api, kpi_world) -> None:
    start = kpi_world["t0"].isoformat()
    city = (await api.client.get("/api/v1/kpis", params={"start": start}, headers=api.auth("admin"))).json()
    assert city["area_code"] == "SH"
    assert (city["registered"], city["closed"], city["due"], city["closed_of_due"]) == (4, 4, 4, 3)
    week = (await api.client.get("/api/v1/kpis", params={"period": "7d", "area_code": STREET_A},
                                 headers=api.auth("street_a"))).json()
    # The last 7 days start at t0+3d (inclusive): c3 was registered then; c2 closed (t0+4d); c2 (due
    # exactly at the start) and c3 fell due, and of those c2 is closed.
    assert week["start"].startswith((kpi_world["now"] - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))
    assert (week["registered"], week["closed"], week["due"], week["closed_of_due"]) == (1, 1, 2, 1)
    assert week["closure_rate"] == 0.5 and week["rework_rate"] == 0.0 and week["extension_rate"] == 1.0


async def test_an_empty_period_gives_null_rates(api, kpi_world) -> None:
    r = await api.client.get("/api/v1/kpis", params={"period": "today"}, headers=api.auth("street_a"))
    body = r.json()
    assert (body["registered"], body["closed"], body["due"]) == (0, 0, 0)
    assert body["closure_rate"] is None and body["satisfaction_mean"] is None and body["accept_p90_h"] is None


@pytest.mark.parametrize(("params", "code", "message"), [
    ({"start": "2026-11-01T00:00:00"}, "bad_time", "start needs a timezone, e.g. 2026-11-21T08:00:00+08:00"),
    ({"start": "2026-11-10T00:00:00Z", "end": "2026-11-01T00:00:00Z"}, "bad_period", "start must be before end"),
    ({"end": "2026-11-01T00:00:00Z"}, "bad_period", "end needs a start"),
    ({"period": "7d", "start": "2026-11-01T00:00:00Z"}, "bad_period",
     "give either period or start and end, not both"),
    ({"start": "2024-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "bad_period",
     "start and end may be at most 366 days apart"),
    ({"start": "9999-12-31T23:00:00-14:00"}, "bad_time", "start is out of range"),
])
async def test_bad_periods_are_refused_with_a_clear_reason(api, params, code, message) -> None:
    r = await api.client.get("/api/v1/kpis", params=params, headers=api.auth("street_a"))
    assert (r.status_code, r.json()) == (422, {"detail": message, "code": code})


async def test_unparseable_dates_and_periods_name_the_parameter(api) -> None:
    for params, where in [({"start": "2026-13-45"}, ["query", "start"]), ({"period": "week"}, ["query", "period"])]:
        r = await api.client.get("/api/v1/kpis", params=params, headers=api.auth("street_a"))
        assert r.status_code == 422 and r.json()["code"] == "invalid"
        assert r.json()["detail"][0]["loc"] == where


async def test_kpis_of_an_area_outside_the_key_are_404(api, kpi_world) -> None:
    for area in (STREET_B, "SH-HP", "SH", "NO-SUCH-AREA"):
        r = await api.client.get("/api/v1/kpis", params={"area_code": area}, headers=api.auth("street_a"))
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), area
    api.key("nothing", ["write"], STREET_A)
    assert (await api.client.get("/api/v1/kpis", headers=api.auth("nothing"))).status_code == 403


# ---------------------------------------------------------------------------- people


@pytest.fixture
def staff(api) -> dict:
    now = api.clock.now()
    ids = {
        "worker_a": add_worker(api.ctx.sessions, now, 7101, area_code=GRID_A1, name="Wang Wei", phone="13900001111"),
        "boss_a": add_supervisor(api.ctx.sessions, now, 7102, area_code=STREET_A, name="Boss Li"),
        "worker_b": add_worker(api.ctx.sessions, now, 7201, area_code=GRID_B1, name="Zhao Min"),
        "resident": add_person(api.ctx.sessions, now, telegram_user_id=7301, roles=["resident"], name="李小龙",
                               phone="13812341234"),
        "idle_a": add_worker(api.ctx.sessions, now, 7103, area_code=GRID_A1, name="Idle Ma", active=False),
    }
    return ids


async def test_a_street_key_lists_its_own_staff_with_personal_data_masked(api, staff) -> None:
    r = await api.client.get("/api/v1/people", headers=api.auth("street_a"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [p["id"] for p in items] == [staff["idle_a"], staff["boss_a"], staff["worker_a"]]  # newest first
    wang = items[-1]
    assert wang == {"id": staff["worker_a"], "display_name": "Wang Wei", "phone": "139****1111",
                    "telegram_user_id": None, "username": None, "roles": ["worker"], "area_code": GRID_A1,
                    "department_code": "greening_appearance", "active": True, "on_duty": True, "deleted": False,
                    "created_at": wang["created_at"]}
    workers = (await api.client.get("/api/v1/people", params={"role": "worker", "active": "true"},
                                    headers=api.auth("street_a"))).json()["items"]
    assert [p["id"] for p in workers] == [staff["worker_a"]]
    in_grid = (await api.client.get("/api/v1/people", params={"area_code": GRID_A1},
                                    headers=api.auth("street_a"))).json()["items"]
    assert {p["id"] for p in in_grid} == {staff["worker_a"], staff["idle_a"]}
    # Residents have no area: a street key never sees them.
    residents = (await api.client.get("/api/v1/people", params={"role": "resident"},
                                      headers=api.auth("street_a"))).json()["items"]
    assert residents == []


async def test_residents_are_masked_unless_the_key_may_see_personal_data(api, staff) -> None:
    api.key("city_reader", ["read"])
    masked = (await api.client.get(f"/api/v1/people/{staff['resident']}", headers=api.auth("city_reader"))).json()
    clear = (await api.client.get(f"/api/v1/people/{staff['resident']}", headers=api.auth("admin"))).json()
    assert (masked["display_name"], masked["phone"], masked["telegram_user_id"]) == ("李**", "138****1234", None)
    assert (clear["display_name"], clear["phone"], clear["telegram_user_id"]) == ("李小龙", "13812341234", 7301)
    listed = (await api.client.get("/api/v1/people", params={"role": "resident"},
                                   headers=api.auth("city_reader"))).json()["items"]
    assert [(p["id"], p["display_name"]) for p in listed] == [(staff["resident"], "李**")]


async def test_people_pages_follow_the_cursor_without_gaps_or_repeats(api, staff) -> None:
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/api/v1/people", params=params, headers=api.auth("admin"))).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    staff_ids = {staff[k] for k in ("worker_a", "boss_a", "worker_b", "idle_a")}
    assert sorted(seen, reverse=True) == seen and set(seen) == staff_ids
    bad = await api.client.get("/api/v1/people", params={"cursor": "nonsense"}, headers=api.auth("admin"))
    assert (bad.status_code, bad.json()["code"]) == (422, "bad_cursor")


async def test_people_outside_the_key_are_404(api, staff) -> None:
    for person in ("worker_b", "resident"):
        r = await api.client.get(f"/api/v1/people/{staff[person]}", headers=api.auth("street_a"))
        assert (r.status_code, r.json()) == (404, {"detail": "no such person", "code": "not_found"})
    r = await api.client.get("/api/v1/people", params={"area_code": STREET_B}, headers=api.auth("street_a"))
    assert r.status_code == 404


async def test_deactivating_a_worker_sends_their_work_back_to_dispatch(api, staff) -> None:
    api.key("admin_a", ["admin"], STREET_A)
    backup = add_worker(api.ctx.sessions, api.clock.now(), 7104, area_code=GRID_A1, on_duty=False)
    # Two cases in the worker's grid: one offered to them, one they accepted.
    held = (await api.intake("street_a", event="d1")).json()["case"]["id"]
    offered = (await api.intake("street_a", event="d2", category="illegal_posting")).json()["case"]["id"]
    with api.ctx.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == held,
                                               WorkOffer.worker_id == staff["worker_a"])).one()
    work.accept_offer(api.ctx, offer_id=offer.id, worker_id=staff["worker_a"])
    with api.ctx.sessions() as s:
        person = s.get(Person, backup)
        person.on_duty = True  # someone is there to take the work over
        s.add(person)
        s.commit()
    r = await api.client.post(f"/api/v1/people/{staff['worker_a']}/deactivate", headers=api.auth("admin_a"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["returned"], body["withdrawn"]) == (1, 1)
    assert body["person"]["active"] is False and body["person"]["on_duty"] is False
    with api.ctx.sessions() as s:
        assert s.get(Case, held).status == Status.DISPATCHED and s.get(Case, held).assignee_id is None
        for case_id in (held, offered):
            task = s.exec(select(CaseTask).where(CaseTask.case_id == case_id)).one()
            offers = s.exec(select(WorkOffer).where(WorkOffer.task_id == task.id,
                                                    WorkOffer.status == OfferStatus.OPEN)).all()
            assert task.status == TaskStatus.OFFERED and [o.worker_id for o in offers] == [backup]
    told = queued(api.ctx.sessions, 7101)[-1].payload["text"]
    assert told == "Your worker account was deactivated by admin_a. Your open orders went back to dispatch."
    again = await api.client.post(f"/api/v1/people/{staff['worker_a']}/deactivate", headers=api.auth("admin_a"))
    assert (again.status_code, again.json()) == (409, {"detail": "this worker is already inactive",
                                                       "code": "already_inactive"})


async def test_only_workers_are_deactivated_and_only_by_admin_keys(api, staff) -> None:
    r = await api.client.post(f"/api/v1/people/{staff['boss_a']}/deactivate", headers=api.auth("admin"))
    assert (r.status_code, r.json()["code"]) == (409, "not_a_worker")
    r = await api.client.post(f"/api/v1/people/{staff['worker_a']}/deactivate", headers=api.auth("street_a"))
    assert (r.status_code, r.json()) == (403, {"detail": "this key lacks the 'admin' scope", "code": "forbidden"})
    with api.ctx.sessions() as s:
        assert s.get(Person, staff["boss_a"]).active and s.get(Person, staff["worker_a"]).active


# ---------------------------------------------------------------------------- invitations


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["start"][0]


async def invite(api, key: str = "admin", **body) -> dict:  # noqa: ANN003
    body = {"role": "worker", "area_code": GRID_A1, "department_code": "greening_appearance", **body}
    r = await api.client.post("/api/v1/invitations", json=body, headers=api.auth(key))
    assert r.status_code == 201, r.text
    return r.json() | {"cache": r.headers.get("cache-control")}


async def test_an_invitation_link_works_once_and_its_token_is_never_listed(api) -> None:
    api.key("admin_a", ["admin"], STREET_A)
    issued = await invite(api, "admin_a", valid_hours=2)
    assert issued["link"].startswith("https://t.me/onegrid_sandbox_bot?start=inv_")
    assert issued["cache"] == "no-store"
    assert (issued["role"], issued["area_code"], issued["state"]) == ("worker", GRID_A1, "open")
    assert issued["expires_at"].startswith((api.clock.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    token = token_of(issued["link"])
    binding = invitations.redeem_invitation(api.ctx, token=token, telegram_user_id=5501, display_name="New Hire")
    assert (binding.role, binding.area_code) == (Role.WORKER, GRID_A1)
    with pytest.raises(InvalidInvitation) as reused:
        invitations.redeem_invitation(api.ctx, token=token, telegram_user_id=5502, display_name="Someone Else")
    assert reused.value.problem is InvitationProblem.REUSED
    listed = await api.client.get("/api/v1/invitations", headers=api.auth("admin_a"))
    assert token not in listed.text and "link" not in listed.text
    [row] = listed.json()["items"]
    assert (row["id"], row["state"], row["used_by_id"]) == (issued["id"], "used", binding.person_id)
    with api.ctx.sessions() as s:
        assert s.get(Invitation, issued["id"]).token_hash == invitations.token_hash(token)  # only the hash is kept
    # The new worker is now visible to the street's keys.
    people = (await api.client.get("/api/v1/people", headers=api.auth("street_a"))).json()["items"]
    assert [p["display_name"] for p in people] == ["New Hire"]


async def test_a_revoked_invitation_is_refused(api) -> None:
    issued = await invite(api, role="supervisor", area_code=STREET_A, department_code=None)
    r = await api.client.post(f"/api/v1/invitations/{issued['id']}/revoke", headers=api.auth("admin"))
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert r.json()["revoked_at"] is not None and r.json()["created_at"] is not None
    with pytest.raises(InvalidInvitation) as refused:
        invitations.redeem_invitation(api.ctx, token=token_of(issued["link"]), telegram_user_id=5601,
                                      display_name="Late")
    assert refused.value.problem is InvitationProblem.EXPIRED
    again = await api.client.post(f"/api/v1/invitations/{issued['id']}/revoke", headers=api.auth("admin"))
    assert again.status_code == 200 and again.json() == r.json()
    open_ones = (await api.client.get("/api/v1/invitations", params={"state": "open"},
                                      headers=api.auth("admin"))).json()["items"]
    assert open_ones == []
    listed = {state: [i["id"] for i in (await api.client.get("/api/v1/invitations", params={"state": state},
                                                               headers=api.auth("admin"))).json()["items"]]
              for state in ("revoked", "expired")}
    assert listed == {"revoked": [issued["id"]], "expired": []}  # told apart from one that ran out
    with api.ctx.sessions() as s:
        assert s.exec(select(Person).where(Person.telegram_user_id == 5601)).first() is None


async def test_a_used_invitation_cannot_be_revoked(api) -> None:
    issued = await invite(api)
    invitations.redeem_invitation(api.ctx, token=token_of(issued["link"]), telegram_user_id=5701, display_name="X")
    r = await api.client.post(f"/api/v1/invitations/{issued['id']}/revoke", headers=api.auth("admin"))
    assert (r.status_code, r.json()) == (409, {"detail": "this invitation was used already", "code": "invitation_used"})


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"department_code": None}, 422, "department_required"),
    ({"department_code": "no_such_department"}, 422, "invalid_invitation"),
    ({"role": "resident"}, 422, "invalid"),
    ({"role": "dispatcher"}, 422, "invalid"),
    ({"valid_hours": 0}, 422, "invalid"),
    ({"id": 7}, 422, "invalid"),  # ids, state and use are the store's: never written by a client
    ({"state": "used"}, 422, "invalid"),
    ({"used_by_id": 1}, 422, "invalid"),
    ({"token": "inv_" + "a" * 32}, 422, "invalid"),
    ({"area_code": STREET_B}, 404, "not_found"),
    ({"area_code": "NO-SUCH-AREA"}, 404, "not_found"),
])
async def test_bad_invitations_are_refused_and_nothing_is_stored(api, body, status, code) -> None:
    api.key("admin_a", ["admin"], STREET_A)
    full = {"role": "worker", "area_code": GRID_A1, "department_code": "greening_appearance", **body}
    r = await api.client.post("/api/v1/invitations", json=full, headers=api.auth("admin_a"))
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    with api.ctx.sessions() as s:
        assert s.exec(select(Invitation)).all() == []


async def test_invitations_need_the_admin_scope(api) -> None:
    for method, url in (("GET", "/api/v1/invitations"), ("POST", "/api/v1/invitations"),
                        ("POST", "/api/v1/invitations/1/revoke")):
        r = await api.client.request(method, url, headers=api.auth("street_a"),
                                     json={"role": "supervisor", "area_code": STREET_A} if method == "POST" else None)
        assert r.status_code == 403, (method, url)


async def test_a_street_admin_sees_and_revokes_only_its_own_invitations(api) -> None:
    api.key("admin_a", ["admin"], STREET_A)
    mine = await invite(api, "admin_a")
    theirs = await invite(api, area_code=GRID_B1)
    listed = (await api.client.get("/api/v1/invitations", headers=api.auth("admin_a"))).json()["items"]
    in_grid = (await api.client.get("/api/v1/invitations", params={"area_code": GRID_A1},
                                    headers=api.auth("admin_a"))).json()["items"]
    assert [i["id"] for i in listed] == [i["id"] for i in in_grid] == [mine["id"]]
    r = await api.client.post(f"/api/v1/invitations/{theirs['id']}/revoke", headers=api.auth("admin_a"))
    assert (r.status_code, r.json()) == (404, {"detail": "no such invitation", "code": "not_found"})
    r = await api.client.get("/api/v1/invitations", params={"area_code": STREET_B}, headers=api.auth("admin_a"))
    assert r.status_code == 404
    binding = invitations.redeem_invitation(api.ctx, token=token_of(theirs["link"]), telegram_user_id=5801,
                                            display_name="Still works")
    assert binding.area_code == GRID_B1


# ---------------------------------------------------------------------------- write schemas and docs

# Store-owned fields: a client never writes them (ids of the store's rows, status, grid, assignment).
STORE_OWNED = {"id", "status", "state", "grid_code", "assignee", "assignee_id", "handler_id", "verifier_id",
               "reporter_id", "used_by_id", "used_at", "created_at", "updated_at", "closed_at", "version", "token",
               "link", "token_hash", "number"}
# Names the store owns on a case that another resource's client legitimately gives: an elder's grid is
# where the elder lives, written by the roster's keeper (or found from lat/lon).
CLIENT_OWNED = {"/api/v1/elders": {"grid_code"}, "/api/v1/elders/{elder_id}": {"grid_code"}}
# Bodies that are documents of another system, not OneGrid objects: GeoJSON, a downstream OneGrid's own
# case events and the upstream's signed Open311 pushes (they carry those systems' statuses by design;
# services/upstream.py checks them).
FREE_BODIES = {("POST", "/api/v1/areas/import"), ("POST", "/api/v1/sync/events"), ("POST", "/api/v1/sync/push")}


async def test_write_schemas_refuse_unknown_fields_and_name_no_store_owned_field(api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    components = spec["components"]["schemas"]

    def resolve(schema: dict) -> list[dict]:
        if "$ref" in schema:
            return resolve(components[schema["$ref"].rsplit("/", 1)[1]])
        if "anyOf" in schema:
            return [s for option in schema["anyOf"] for s in resolve(option)]
        if schema.get("type") == "array":
            return resolve(schema["items"])
        return [schema] if schema.get("type") == "object" else []

    checked = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if not path.startswith("/api/v1") or body is None or (method.upper(), path) in FREE_BODIES:
                continue
            for schema in resolve(body["schema"]):
                assert schema.get("additionalProperties") is False, (method, path, schema.get("title"))
                owned = set(schema.get("properties", {})) & STORE_OWNED - CLIENT_OWNED.get(path, set())
                assert not owned, (method, path, schema.get("title"))
                checked.add((method.upper(), path))
    assert {("POST", "/api/v1/invitations"), ("PATCH", "/api/v1/cases/{case_id}"),
            ("POST", "/api/v1/cases")} <= checked


async def test_a_case_edit_cannot_set_status_grid_or_assignee(api) -> None:
    case = (await api.intake("street_a", event="p1")).json()["case"]
    for field, value in (("status", "closed"), ("grid_code", f"{STREET_B}-001"), ("assignee_id", 1), ("id", 5)):
        r = await api.client.patch(f"/api/v1/cases/{case['id']}", json={"description": "x", field: value},
                                   headers=api.auth("street_a"))
        assert (r.status_code, r.json()["code"]) == (422, "invalid"), field
    after = (await api.client.get(f"/api/v1/cases/{case['id']}", headers=api.auth("street_a"))).json()
    assert (after["status"], after["grid_code"], after["description"], after["version"]) == (
        case["status"], case["grid_code"], case["description"], case["version"])


async def test_the_openapi_document_describes_the_management_routes(api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    expected = {
        ("get", "/api/v1/kpis"): "kpis", ("get", "/api/v1/people"): "people",
        ("get", "/api/v1/people/{person_id}"): "people", ("post", "/api/v1/people/{person_id}/deactivate"): "people",
        ("post", "/api/v1/invitations"): "invitations", ("get", "/api/v1/invitations"): "invitations",
        ("post", "/api/v1/invitations/{invitation_id}/revoke"): "invitations",
    }
    for (method, path), tag in expected.items():
        operation = spec["paths"][path][method]
        assert operation["tags"] == [tag] and operation["summary"], (method, path)
        assert "404" in operation["responses"] and "401" in operation["responses"], (method, path)
    assert {t["name"] for t in spec["tags"]} >= {"kpis", "people", "invitations"}
    kpi_fields = spec["components"]["schemas"]["KpiReport"]["properties"]
    assert "结案率" in kpi_fields["closure_rate"]["description"]
