"""Open311 reads without a key (the public view), what each reader sees, and bad input on the edges.

The public view (issue 14) and the masking for keys without `pii` (issue 13, item 5): a phone
number, an ID-card number and a name typed into a description are masked, coordinates rounded to
about 100 m; a `pii` key reads them as stored. Item 10: dates at the calendar's ends answer 400 and
a chunked body over the limit answers 413.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from models.lifecycle import Action, Actor, Role
from models.tables import Case
from services.cases import apply_action
from tests.api.conftest import STREET_A, STREET_B, api_settings, client_for, open311_validator, prepare_store
from tests.api.test_open311 import both, post_request

SECRET = "路灯坏了，我叫王小明，电话13812345678，身份证110101199003071234"


async def _posted(api, **form: Any) -> str:
    r = await post_request(api, description=SECRET, **form)
    assert r.status_code == 200, r.text
    return r.json()[0]["service_request_id"]


def _stored(api, number: str) -> Case:
    with api.ctx.sessions() as s:
        return s.exec(select(Case).where(Case.number == number)).one()


async def test_reads_need_no_key_and_mask_the_description_and_the_place(api) -> None:
    number = await _posted(api, media_url="https://img.example/1.jpg")
    case = _stored(api, number)
    [one] = await both(api, f"/open311/v2/requests/{number}", "requests.json")  # no api_key at all
    listed = await both(api, "/open311/v2/requests", "requests.json", service_request_id=number)
    assert listed == [one]
    text = one["description"]
    assert "王小明" not in text and "13812345678" not in text and "110101199003071234" not in text
    assert text.startswith("路灯坏了") and "138****5678" in text and "我叫***" in text
    assert one["lat"] == round(case.lat, 3) and one["long"] == round(case.lon, 3)
    assert (one["lat"], one["long"]) != (case.lat, case.lon)
    assert one["status"] == "open" and one["status_notes"] and one["agency_responsible"]
    assert one["requested_datetime"] and one["service_code"] == "exposed_garbage"
    assert one["media_url"] == "https://img.example/1.jpg"  # the client published it itself


async def test_a_read_key_sees_its_area_masked_and_pii_reads_it_as_stored(api) -> None:
    number = await _posted(api)
    case = _stored(api, number)
    api.key("reader_b", ["read"], STREET_B)
    api.key("pii_a", ["read", "pii"], STREET_A)
    area = (await api.client.get(f"/open311/v2/requests/{number}.json",
                                 params={"api_key": api.tokens["street_a"]})).json()[0]
    assert "13812345678" not in area["description"] and area["lat"] == round(case.lat, 3)
    full = (await api.client.get(f"/open311/v2/requests/{number}.json",
                                 params={"api_key": api.tokens["pii_a"]})).json()[0]
    assert full["description"] == SECRET and (full["lat"], full["long"]) == (case.lat, case.lon)
    foreign = await api.client.get(f"/open311/v2/requests/{number}.json", params={"api_key": api.tokens["reader_b"]})
    assert foreign.status_code == 404  # a key's reads stay inside its area, as before
    bad = await api.client.get(f"/open311/v2/requests/{number}.json", params={"api_key": "og_nope_nope"})
    assert bad.status_code == 403


async def test_api_v1_and_exports_mask_for_a_key_without_pii(api) -> None:
    number = await _posted(api)
    case = _stored(api, number)
    api.key("pii_a", ["read", "pii"], STREET_A)
    read = (await api.client.get(f"/api/v1/cases/{case.id}", headers=api.auth("street_a"))).json()
    assert "13812345678" not in read["description"] and "王小明" not in read["description"]
    assert (read["lat"], read["lon"]) == (round(case.lat, 3), round(case.lon, 3))
    full = (await api.client.get(f"/api/v1/cases/{case.id}", headers=api.auth("pii_a"))).json()
    assert full["description"] == SECRET and (full["lat"], full["lon"]) == (case.lat, case.lon)
    csv = (await api.client.get("/api/v1/exports/cases.csv", headers=api.auth("street_a"))).text
    geo = (await api.client.get("/api/v1/exports/cases.geojson", headers=api.auth("street_a"))).json()
    assert "13812345678" not in csv and "110101199003071234" not in csv and str(case.lat) not in csv
    [feature] = geo["features"]
    assert feature["geometry"]["coordinates"] == [round(case.lon, 3), round(case.lat, 3)]
    assert "王小明" not in feature["properties"]["description"]


async def test_public_reads_can_be_turned_off(db, clock, tmp_path, demo_map) -> None:
    from onegrid.app import build

    app = build(api_settings(db.url, tmp_path, open311_public_reads=False), clock=clock)
    prepare_store(app, demo_map)
    async with client_for(app) as client:
        for fmt in ("json", "xml"):
            r = await client.get(f"/open311/v2/requests.{fmt}")
            assert r.status_code == 403 and "key" in (r.json()[0]["description"] if fmt == "json" else r.text)
        assert (await client.get("/open311/v2/services.json")).status_code == 200
    app.engine.dispose()


async def test_jurisdiction_id_is_checked_only_where_configured(api, db, clock, tmp_path, demo_map) -> None:
    assert (await api.client.get("/open311/v2/services.json", params={"jurisdiction_id": "any.city"})).status_code == 200
    from onegrid.app import build

    app = build(api_settings(db.url, tmp_path / "j", open311_jurisdiction_id="shanghai.gov.cn"), clock=clock)
    prepare_store(app, demo_map)
    async with client_for(app) as client:
        right = await client.get("/open311/v2/requests.json", params={"jurisdiction_id": "shanghai.gov.cn"})
        absent = await client.get("/open311/v2/services.json")
        wrong = await client.get("/open311/v2/requests.json", params={"jurisdiction_id": "beijing.gov.cn"})
        wrong_xml = await client.get("/open311/v2/services.xml", params={"jurisdiction_id": "beijing.gov.cn"})
    app.engine.dispose()
    assert right.status_code == absent.status_code == 200
    assert wrong.status_code == wrong_xml.status_code == 400
    assert wrong.json()[0]["code"] == 400 and "jurisdiction_id" in wrong.json()[0]["description"]
    assert b"<errors><error><code>400</code>" in wrong_xml.content


@pytest.mark.parametrize("params", [
    {"start_date": "9999-12-31T23:59:59"},
    {"end_date": "0001-01-01T00:00:00"},
    {"updated_before": "0001-01-01T00:00:00+14:00"},
    {"updated_after": "9999-12-31T23:59:59-12:00"},
])
@pytest.mark.parametrize("keyed", [False, True])
async def test_dates_at_the_calendars_ends_answer_400_not_500(api, params, keyed) -> None:
    query = {**params, **({"api_key": api.tokens["admin"]} if keyed else {})}
    r = await api.client.get("/open311/v2/requests.json", params=query)
    assert r.status_code == 400, r.text
    [error] = r.json()
    open311_validator("requests.json")  # the schemas load; the error body is the standard array
    assert error["code"] == 400 and next(iter(params)) in error["description"]


async def test_a_chunked_body_over_the_limit_answers_413(api) -> None:
    def chunks():  # noqa: ANN202 - no Content-Length: httpx sends a generator chunked
        for _ in range(100):
            yield b"description=" + b"x" * 4096 if _ == 0 else b"x" * 4096

    async def body():  # noqa: ANN202
        for chunk in chunks():
            yield chunk

    r = await api.client.post("/open311/v2/requests.json", content=body(), params={"api_key": api.tokens["street_a"]},
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    v1 = await api.client.post("/api/v1/cases", content=body(),
                               headers={**api.auth("street_a"), "Content-Type": "application/json"})
    assert v1.status_code == 413
    with api.ctx.sessions() as s:
        assert s.exec(select(Case)).first() is None


async def test_keyless_reads_are_rate_limited_per_address(db, clock, tmp_path, demo_map) -> None:
    from onegrid.app import build

    app = build(api_settings(db.url, tmp_path, api_default_rate_per_minute=10), clock=clock)  # a burst of 1
    prepare_store(app, demo_map)
    async with client_for(app) as client:
        first = await client.get("/open311/v2/requests.json")
        second = await client.get("/open311/v2/requests.xml")
        clock.advance(seconds=6)
        third = await client.get("/open311/v2/requests.json")
    app.engine.dispose()
    assert first.status_code == 200 and third.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "6" and b"<code>429</code>" in second.content


def test_the_rate_limiter_forgets_the_idlest_addresses_past_its_bound(clock) -> None:
    from services.api_keys import RateLimiter

    limiter = RateLimiter(max_buckets=4)
    for n in range(4):
        limiter.check(f"public:10.0.0.{n}", 10, clock.now())
        clock.advance(seconds=1)
    assert limiter.check("public:10.0.0.3", 10, clock.now()) > 0  # its burst is spent
    limiter.check("public:10.0.0.9", 10, clock.now())  # a fifth address: the two idlest are forgotten
    assert len(limiter._buckets) == 3 and "public:10.0.0.0" not in limiter._buckets


async def test_status_notes_are_masked_like_the_description(api) -> None:
    number = await _posted(api)
    apply_action(api.ctx, case_id=_stored(api, number).id, action=Action.CANCEL, actor=Actor(Role.DISPATCHER),
                 note="Resolved by phone with the resident, 13812345678")
    [public] = (await api.client.get(f"/open311/v2/requests/{number}.json")).json()
    assert public["status"] == "closed" and public["status_notes"] == "Resolved by phone with the resident, 138****5678"
