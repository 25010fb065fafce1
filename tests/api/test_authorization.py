"""Object-level authorization: a key for street A against street B's case, on every id-taking route and filter.

Every answer is 404 (the same as for an id that does not exist) and the store is unchanged
afterwards: the case row, its events, outbox, notifications, idempotency records, photos.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from models.api import IdempotencyRecord, MachineCase
from models.tables import Case, CaseEvent, Notification, OutboxItem, Photo
from tests.api.conftest import STREET_A, STREET_B


def snapshot(api) -> dict:
    with api.ctx.sessions() as s:
        return {
            "cases": [c.model_dump(warnings=False) for c in s.exec(select(Case).order_by(Case.id))],
            "events": [e.model_dump(warnings=False) for e in s.exec(select(CaseEvent).order_by(CaseEvent.id))],
            "outbox": [o.model_dump(warnings=False) for o in s.exec(select(OutboxItem).order_by(OutboxItem.id))],
            "notifications": [n.model_dump(warnings=False) for n in s.exec(select(Notification).order_by(Notification.id))],
            "idempotency": [r.model_dump(warnings=False) for r in s.exec(select(IdempotencyRecord))],
            "machine": [m.model_dump(warnings=False) for m in s.exec(select(MachineCase))],
        }


@pytest.fixture
async def other_street_case(api) -> dict:
    """A machine case in street B with a photo on disk, and one in street A for contrast."""
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
    return {"b": b, "a": a, "photo_id": photo.id}


def id_routes(api) -> set[tuple[str, str]]:
    out = set()
    for route in api.app.api.routes:
        path = getattr(route, "path", "")
        if "{" in path and (path.startswith("/api/v1") or path.startswith("/open311")):
            for method in route.methods:
                if re.search(r"\{(case_id|code|service_request_id|photo_id)\}", path):
                    out.add((method, path))
    return out


async def test_street_a_key_gets_404_on_every_id_route_for_street_b(api, other_street_case) -> None:
    b, photo_id = other_street_case["b"], other_street_case["photo_id"]
    headers = {**api.auth("street_a"), "Idempotency-Key": "probe"}
    key_q = {"api_key": api.tokens["street_a"]}
    probes = {
        ("GET", "/api/v1/cases/{case_id}"): dict(url=f"/api/v1/cases/{b['id']}"),
        ("PATCH", "/api/v1/cases/{case_id}"): dict(url=f"/api/v1/cases/{b['id']}", json={"description": "x"}),
        ("POST", "/api/v1/cases/{case_id}/actions"): dict(url=f"/api/v1/cases/{b['id']}/actions",
                                                          json={"action": "cancel", "note": "probe"}),
        ("POST", "/api/v1/cases/{case_id}/clear"): dict(url=f"/api/v1/cases/{b['id']}/clear"),
        ("GET", "/api/v1/cases/{case_id}/photos"): dict(url=f"/api/v1/cases/{b['id']}/photos"),
        ("GET", "/api/v1/cases/{case_id}/photos/{photo_id}"): dict(url=f"/api/v1/cases/{b['id']}/photos/{photo_id}"),
        ("GET", "/api/v1/areas/{code}"): dict(url=f"/api/v1/areas/{STREET_B}"),
        ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): dict(
            url=f"/open311/v2/requests/{b['number']}.json", params=key_q),
    }
    # Routes about the catalogue take a category code, not an object of an area: not area-scoped.
    unscoped = {("GET", "/api/v1/categories/{code}"), ("PATCH", "/api/v1/categories/{code}"),
                ("PUT", "/api/v1/categories/{code}/intake-rule"), ("PUT", "/api/v1/categories/{code}/questions"),
                ("GET", "/open311/v2/services/{service_code}.{fmt}")}
    assert id_routes(api) - unscoped <= set(probes), f"probe missing for {id_routes(api) - unscoped - set(probes)}"
    before = snapshot(api)
    for i, ((method, _), kw) in enumerate(probes.items()):
        r = await api.client.request(method, headers={**headers, "Idempotency-Key": f"probe-{i}"}, **kw)
        assert r.status_code == 404, (method, kw["url"], r.status_code, r.text)
    assert snapshot(api) == before


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
