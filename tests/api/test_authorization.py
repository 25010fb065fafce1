"""Object-level authorization: a key for street A against street B's objects, on every id-taking route and filter.

Every answer is 404 (the same as for an id that does not exist) and the store is unchanged
afterwards: the case row, its events, outbox, notifications, idempotency records, photos, people,
invitations, tasks and offers.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from models.api import IdempotencyRecord, MachineCase
from models.tables import Case, CaseEvent, Invitation, Notification, OutboxItem, Person, Photo
from models.work import CaseTask, WorkOffer
from services.invitations import create_invitation
from tests.api.conftest import STREET_A, STREET_B
from tests.worker_support import add_worker


def snapshot(api) -> dict:
    with api.ctx.sessions() as s:
        return {
            "cases": [c.model_dump(warnings=False) for c in s.exec(select(Case).order_by(Case.id))],
            "events": [e.model_dump(warnings=False) for e in s.exec(select(CaseEvent).order_by(CaseEvent.id))],
            "outbox": [o.model_dump(warnings=False) for o in s.exec(select(OutboxItem).order_by(OutboxItem.id))],
            "notifications": [n.model_dump(warnings=False) for n in s.exec(select(Notification).order_by(Notification.id))],
            "idempotency": [r.model_dump(warnings=False) for r in s.exec(select(IdempotencyRecord))],
            "machine": [m.model_dump(warnings=False) for m in s.exec(select(MachineCase))],
            "people": [p.model_dump(warnings=False) for p in s.exec(select(Person).order_by(Person.id))],
            "invitations": [i.model_dump(warnings=False) for i in s.exec(select(Invitation).order_by(Invitation.id))],
            "tasks": [t.model_dump(warnings=False) for t in s.exec(select(CaseTask).order_by(CaseTask.id))],
            "offers": [o.model_dump(warnings=False) for o in s.exec(select(WorkOffer).order_by(WorkOffer.id))],
        }


@pytest.fixture
async def other_street_case(api) -> dict:
    """A machine case in street B with a photo on disk, and one in street A for contrast.

    Street B also has a worker on duty (offered B's case) and an open invitation; street A has a
    key with every scope (`admin_a`), so only the area can stop it.
    """
    api.key("admin_a", ["admin"], STREET_A)
    worker_b = add_worker(api.ctx.sessions, api.clock.now(), 6201, area_code=f"{STREET_B}-001")
    invitation_b = create_invitation(api.ctx, role="supervisor", area_code=STREET_B).invitation_id
    b = (await api.intake("street_b", street=STREET_B, event="b1")).json()["case"]
    a = (await api.intake("street_a", street=STREET_A, event="a1")).json()["case"]
    photo_file = api.app.settings.data_dir / "photos" / "ab" / "abc.jpg"
    photo_file.parent.mkdir(parents=True, exist_ok=True)
    photo_file.write_bytes(b"\xff\xd8\xff\xd9")
    with api.ctx.sessions() as s:
        photo = Photo(case_id=b["id"], purpose="report", path="photos/ab/abc.jpg", width=1, height=1,
                      created_at=api.clock.now())
        s.add(photo)
        s.commit()
        s.refresh(photo)
    return {"b": b, "a": a, "photo_id": photo.id, "worker_b": worker_b, "invitation_b": invitation_b}


def id_routes(api) -> set[tuple[str, str]]:
    out = set()
    for route in api.app.api.routes:
        path = getattr(route, "path", "")
        if "{" in path and (path.startswith("/api/v1") or path.startswith("/open311")):
            for method in route.methods:
                if re.search(r"\{(case_id|code|service_request_id|photo_id|person_id|invitation_id)\}", path):
                    out.add((method, path))
    return out


@pytest.mark.parametrize("key", ["street_a", "admin_a"])
async def test_street_a_key_gets_404_on_every_id_route_for_street_b(api, other_street_case, key) -> None:
    b, photo_id = other_street_case["b"], other_street_case["photo_id"]
    worker_b, invitation_b = other_street_case["worker_b"], other_street_case["invitation_b"]
    headers = {**api.auth(key), "Idempotency-Key": "probe"}
    key_q = {"api_key": api.tokens[key]}
    probes = {
        ("GET", "/api/v1/cases/{case_id}"): dict(url=f"/api/v1/cases/{b['id']}"),
        ("PATCH", "/api/v1/cases/{case_id}"): dict(url=f"/api/v1/cases/{b['id']}", json={"description": "x"}),
        ("POST", "/api/v1/cases/{case_id}/actions"): dict(url=f"/api/v1/cases/{b['id']}/actions",
                                                          json={"action": "cancel", "note": "probe"}),
        ("POST", "/api/v1/cases/{case_id}/clear"): dict(url=f"/api/v1/cases/{b['id']}/clear"),
        ("GET", "/api/v1/cases/{case_id}/photos"): dict(url=f"/api/v1/cases/{b['id']}/photos"),
        ("GET", "/api/v1/cases/{case_id}/photos/{photo_id}"): dict(url=f"/api/v1/cases/{b['id']}/photos/{photo_id}"),
        ("GET", "/api/v1/areas/{code}"): dict(url=f"/api/v1/areas/{STREET_B}"),
        ("GET", "/api/v1/people/{person_id}"): dict(url=f"/api/v1/people/{worker_b}"),
        ("POST", "/api/v1/people/{person_id}/deactivate"): dict(url=f"/api/v1/people/{worker_b}/deactivate"),
        ("POST", "/api/v1/invitations/{invitation_id}/revoke"): dict(
            url=f"/api/v1/invitations/{invitation_b}/revoke"),
        ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): dict(
            url=f"/open311/v2/requests/{b['number']}.json", params=key_q),
    }
    # Routes about the catalogue take a category code, not an object of an area: not area-scoped.
    unscoped = {("GET", "/api/v1/categories/{code}"), ("PATCH", "/api/v1/categories/{code}"),
                ("PUT", "/api/v1/categories/{code}/intake-rule"), ("PUT", "/api/v1/categories/{code}/questions"),
                ("GET", "/open311/v2/services/{service_code}.{fmt}")}
    assert id_routes(api) - unscoped <= set(probes), f"probe missing for {id_routes(api) - unscoped - set(probes)}"
    # The admin-only routes answer 403 to a key without the admin scope, before looking at the object.
    admin_only = {("POST", "/api/v1/people/{person_id}/deactivate"), ("POST", "/api/v1/invitations/{invitation_id}/revoke")}
    before = snapshot(api)
    for i, ((method, path), kw) in enumerate(probes.items()):
        r = await api.client.request(method, headers={**headers, "Idempotency-Key": f"probe-{i}"}, **kw)
        expected = 403 if key == "street_a" and (method, path) in admin_only else 404
        assert r.status_code == expected, (method, kw["url"], r.status_code, r.text)
    assert snapshot(api) == before


async def test_new_management_filters_and_writes_never_reach_street_b(api, other_street_case) -> None:
    key = api.auth("admin_a")
    before = snapshot(api)
    for url, params in [
        ("/api/v1/kpis", {"area_code": STREET_B}),
        ("/api/v1/kpis", {"area_code": "SH-HP"}),
        ("/api/v1/people", {"area_code": STREET_B}),
        ("/api/v1/people", {"area_code": f"{STREET_B}-001"}),
        ("/api/v1/invitations", {"area_code": STREET_B}),
    ]:
        r = await api.client.get(url, params=params, headers=key)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), (url, params, r.text)
    r = await api.client.post("/api/v1/invitations", headers=key,
                              json={"role": "supervisor", "area_code": STREET_B})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    # Unfiltered, the lists hold street A only.
    people = (await api.client.get("/api/v1/people", headers=key)).json()["items"]
    invites = (await api.client.get("/api/v1/invitations", headers=key)).json()["items"]
    api.clock.advance(minutes=1)  # periods end (exclusively) at now
    kpis = (await api.client.get("/api/v1/kpis", params={"period": "today"}, headers=key)).json()
    assert people == [] and invites == []
    assert kpis["area_code"] == STREET_A and kpis["registered"] == 1  # street A's case only
    assert snapshot(api) == before


async def test_a_street_key_may_filter_inside_its_own_area(api, other_street_case) -> None:
    a = other_street_case["a"]
    for url in ("/api/v1/cases", "/api/v1/exports/cases.geojson"):
        r = await api.client.get(url, params={"area_code": a["grid_code"]}, headers=api.auth("street_a"))
        assert r.status_code == 200, (url, r.text)
    listed = (await api.client.get("/api/v1/cases", params={"area_code": a["grid_code"]},
                                   headers=api.auth("street_a"))).json()["items"]
    assert [c["id"] for c in listed] == [a["id"]]


async def test_list_filters_and_exports_never_show_street_b(api, other_street_case) -> None:
    b, a = other_street_case["b"], other_street_case["a"]
    before = snapshot(api)
    key = api.auth("street_a")
    q = {"api_key": api.tokens["street_a"]}
    for url, params in [
        ("/api/v1/cases", {"area_code": STREET_B}),
        ("/api/v1/cases", {"area_code": "SH-HP"}),  # the parent district is outside a street's key too
        ("/api/v1/exports/cases.geojson", {"area_code": STREET_B}),
        ("/api/v1/exports/cases.csv", {"area_code": STREET_B}),
        ("/open311/v2/requests.json", {**q, "service_request_id": b["number"]}),
        ("/open311/v2/requests.xml", {**q, "service_request_id": b["number"]}),
    ]:
        r = await api.client.get(url, params=params, headers=key)
        assert r.status_code == 404, (url, params, r.text)
    # Unfiltered lists, other filters and exports show street A's case only.
    listed = (await api.client.get("/api/v1/cases", headers=key)).json()["items"]
    by_status = (await api.client.get("/api/v1/cases", params={"status": "registered"}, headers=key)).json()["items"]
    by_category = (await api.client.get("/api/v1/cases", params={"category_code": "exposed_garbage"},
                                        headers=key)).json()["items"]
    geo = (await api.client.get("/api/v1/exports/cases.geojson", headers=key)).json()["features"]
    csv_text = (await api.client.get("/api/v1/exports/cases.csv", headers=key)).text
    open311 = (await api.client.get("/open311/v2/requests.json", params=q)).json()
    areas = (await api.client.get("/api/v1/areas", headers=key)).json()
    assert [c["id"] for c in listed] == [c["id"] for c in by_status] == [c["id"] for c in by_category] == [a["id"]]
    assert [f["id"] for f in geo] == [a["id"]]
    assert a["number"] in csv_text and b["number"] not in csv_text
    assert [r["service_request_id"] for r in open311] == [a["number"]]
    assert {x["code"] for x in areas} and all(x["code"].startswith(STREET_A) for x in areas)
    assert snapshot(api) == before


async def test_the_city_key_sees_both_streets(api, other_street_case) -> None:
    listed = (await api.client.get("/api/v1/cases", headers=api.auth("admin"))).json()["items"]
    assert {c["id"] for c in listed} == {other_street_case["a"]["id"], other_street_case["b"]["id"]}
    photo = await api.client.get(f"/api/v1/cases/{other_street_case['b']['id']}/photos/{other_street_case['photo_id']}",
                                 headers=api.auth("admin"))
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"


async def test_a_revoked_key_is_refused(api) -> None:
    from services.api_keys import revoke_key

    key_id = api.tokens["street_a"].split("_")[1]
    assert (await api.client.get("/api/v1/me", headers=api.auth("street_a"))).status_code == 200
    revoke_key(api.ctx, key_id=key_id)
    r = await api.client.get("/api/v1/me", headers=api.auth("street_a"))
    assert r.status_code == 401
    forged = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer og_{key_id}_not-the-secret"})
    assert forged.status_code == 401


async def test_a_key_revoked_by_another_process_is_refused_within_the_recheck_time(api) -> None:
    """A checked token is trusted for RECHECK_AFTER without a read of its key; a revocation made elsewhere
    (another process: its own sessions on the same store) holds once that time has passed."""
    from dataclasses import replace

    from services.api_keys import RECHECK_AFTER, revoke_key
    from services.db import make_session_factory

    key_id = api.tokens["street_a"].split("_")[1]
    assert (await api.client.get("/api/v1/me", headers=api.auth("street_a"))).status_code == 200
    revoke_key(replace(api.ctx, sessions=make_session_factory(api.app.engine)), key_id=key_id)
    assert (await api.client.get("/api/v1/me", headers=api.auth("street_a"))).status_code == 200
    api.clock.advance(seconds=RECHECK_AFTER.total_seconds())
    r = await api.client.get("/api/v1/me", headers=api.auth("street_a"))
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


async def test_personal_data_is_masked_without_the_pii_scope(api) -> None:
    from models.lifecycle import Actor, Role
    from models.tables import CaseSource, Person
    from services.cases import report_case

    with api.ctx.sessions() as s:
        s.add(Person(id=77, telegram_user_id=7077, display_name="李小龙", phone="13812341234", roles=["resident"],
                     created_at=api.clock.now()))
        s.commit()
    lat, lon = api.point(STREET_A)
    case = report_case(api.ctx, actor=Actor(Role.RESIDENT, 77), source=CaseSource.RESIDENT,
                       category_code="exposed_garbage", lat=lat, lon=lon)
    masked = (await api.client.get(f"/api/v1/cases/{case.id}", headers=api.auth("street_a"))).json()["reporter"]
    api.key("pii", ["read", "pii"], STREET_A)
    clear = (await api.client.get(f"/api/v1/cases/{case.id}", headers=api.auth("pii"))).json()["reporter"]
    assert masked == {"id": 77, "display_name": "李**", "phone": "138****1234"}
    assert clear == {"id": 77, "display_name": "李小龙", "phone": "13812341234"}


async def test_rate_limit_answers_429_with_retry_after(api) -> None:
    api.key("slow", ["read"], STREET_A, rate_per_minute=10)  # a burst of 1, then one every 6 s
    first = await api.client.get("/api/v1/me", headers=api.auth("slow"))
    second = await api.client.get("/api/v1/me", headers=api.auth("slow"))
    assert first.status_code == 200 and second.status_code == 429
    assert int(second.headers["Retry-After"]) == 6
    api.clock.advance(seconds=6)
    assert (await api.client.get("/api/v1/me", headers=api.auth("slow"))).status_code == 200


async def test_oversized_bodies_are_refused_before_anything_is_stored(api) -> None:
    body = b'{"source": "camera", "description": "' + b"x" * (300 * 1024) + b'"}'
    r = await api.client.post("/api/v1/cases", content=body,
                              headers={**api.auth("street_a"), "Content-Type": "application/json"})
    assert r.status_code == 413
    with api.ctx.sessions() as s:
        assert s.exec(select(Case)).first() is None
