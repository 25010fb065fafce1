"""Open311 GeoReport v2 as an existing client uses it, every answer checked against the bundled schemas.

JSON answers are validated as they are; XML answers are parsed with defusedxml, turned into the
JSON shape (typed by the schema), validated the same way, and compared with the JSON answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from defusedxml.ElementTree import fromstring

from models.lifecycle import Action, Actor, Role
from services.cases import apply_action
from services.upstream import requests_from_xml
from tests.api.conftest import STREET_A, STREET_B, load_schema, open311_validator


def _typed(tag: str, text: str | None, props: dict[str, Any]) -> Any:
    if text is None:
        return None
    types = {o.get("type") for o in props.get(tag, {}).get("anyOf", [props.get(tag, {})])}
    if "boolean" in types:
        return text == "true"
    if "integer" in types:
        return int(text)
    if "number" in types:
        return float(text)
    return text


def xml_to_json(body: bytes, schema_name: str) -> Any:
    """Our XML in the JSON shape, typed by the named schema's properties."""
    root = fromstring(body, forbid_dtd=True)
    item_schema = load_schema({"services.json": "service.json", "requests.json": "request.json"}.get(
        schema_name, schema_name))
    props = item_schema.get("properties", {})

    def element(el: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for child in el:
            if child.tag == "attributes":
                attr_props = props["attributes"]["items"]["properties"]
                out["attributes"] = []
                for a in child:
                    d = {c.tag: _typed(c.tag, (c.text or "").strip() or None, attr_props) for c in a if c.tag != "values"}
                    d["values"] = [{v.tag: v.text for v in value} for value in a.find("values")]
                    out["attributes"].append(d)
            else:
                out[child.tag] = _typed(child.tag, (child.text or "").strip() or None, props)
        return out

    if schema_name in ("services.json", "requests.json"):
        return [element(el) for el in root]
    return element(root)


async def both(api, path: str, schema: str, **params: Any) -> Any:
    """GET the JSON and XML forms; both must validate and say the same."""
    j = await api.client.get(f"{path}.json", params=params)
    x = await api.client.get(f"{path}.xml", params=params)
    assert j.status_code == x.status_code == 200, (j.text, x.text)
    assert j.headers["content-type"].startswith("application/json")
    assert x.headers["content-type"].startswith("application/xml")
    validator = open311_validator(schema)
    validator.validate(j.json())
    as_json = xml_to_json(x.content, schema)
    validator.validate(as_json)
    assert _standard(as_json) == _standard(j.json())
    return j.json()


def _standard(data: Any) -> Any:
    """Without OneGrid's own extension fields (typed only in JSON; XML carries them as text)."""
    if isinstance(data, list):
        return [_standard(d) for d in data]
    return {k: v for k, v in data.items() if not k.startswith("onegrid_")}


async def test_services_list_the_active_catalogue_in_both_formats(api) -> None:
    services = await both(api, "/open311/v2/services", "services.json", locale="en")
    garbage = next(s for s in services if s["service_code"] == "exposed_garbage")
    assert garbage["service_name"] == "Exposed garbage" and garbage["type"] == "realtime"
    assert garbage["metadata"] is False
    zh = (await api.client.get("/open311/v2/services.json")).json()
    assert next(s for s in zh if s["service_code"] == "exposed_garbage")["service_name"] == "暴露垃圾"


async def test_a_service_definition_carries_the_categorys_questions(api) -> None:
    questions = [
        {"code": "volume", "datatype": "singlevaluelist", "required": True, "description": "How much?",
         "values": [{"key": "bag", "name": "A bag"}, {"key": "pile", "name": "A pile & more <lots>"}]},
        {"code": "smell", "datatype": "string", "description": "Any smell?"},
    ]
    r = await api.client.put("/api/v1/categories/exposed_garbage/questions", json=questions,
                             headers=api.auth("admin"))
    assert r.status_code == 200, r.text
    definition = await both(api, "/open311/v2/services/exposed_garbage", "service-definition.json")
    assert [a["code"] for a in definition["attributes"]] == ["volume", "smell"]
    assert definition["attributes"][0]["values"][1]["name"] == "A pile & more <lots>"  # escaped by the library
    assert definition["attributes"][0]["required"] is True and definition["attributes"][0]["order"] == 1
    services = (await api.client.get("/open311/v2/services.json")).json()
    assert next(s for s in services if s["service_code"] == "exposed_garbage")["metadata"] is True


async def post_request(api, fmt: str = "json", key: str = "street_a", **form: Any):
    lat, lon = api.point(STREET_A)
    data = {"api_key": api.tokens[key], "service_code": "exposed_garbage", "lat": str(lat), "long": str(lon),
            "description": "Overflowing bin at the corner", "email": "li.lei@example.com", "first_name": "Lei",
            "last_name": "Li", "phone": "13812341234", **form}
    return await api.client.post(f"/open311/v2/requests.{fmt}", data=data)


async def test_post_then_read_a_request_like_an_open311_client(api) -> None:
    created = await post_request(api, media_url="https://img.example/1.jpg")
    assert created.status_code == 200, created.text
    [answer] = created.json()
    number = answer["service_request_id"]
    assert number.startswith("SH-") and set(answer) == {"service_request_id", "service_notice"}
    swagger = load_schema("swagger.json")["definitions"]["RequestResponse"]
    from jsonschema import Draft4Validator

    Draft4Validator(swagger).validate(answer)
    [one] = await both(api, f"/open311/v2/requests/{number}", "requests.json", api_key=api.tokens["street_a"])
    assert one["status"] == "open" and one["service_code"] == "exposed_garbage"
    assert one["description"] == "Overflowing bin at the corner" and one["media_url"] == "https://img.example/1.jpg"
    assert one["agency_responsible"] and one["requested_datetime"].endswith("+08:00")
    xml = await post_request(api, fmt="xml", description="second")
    assert xml.status_code == 200 and fromstring(xml.content).find("request/service_request_id").text.startswith("SH-")


async def test_post_checks_attributes_against_the_questions(api) -> None:
    await api.client.put("/api/v1/categories/exposed_garbage/questions", headers=api.auth("admin"), json=[
        {"code": "volume", "datatype": "singlevaluelist", "required": True,
         "values": [{"key": "bag", "name": "A bag"}]}])
    missing = await post_request(api)
    wrong = await post_request(api, **{"attribute[volume]": "truck"})
    right = await post_request(api, **{"attribute[volume]": "bag"})
    assert missing.status_code == wrong.status_code == 400
    assert "volume" in missing.json()[0]["description"] and missing.json()[0]["code"] == 400
    assert right.status_code == 200


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_errors_are_the_standard_array_in_both_formats(api, fmt) -> None:
    cases = [
        (await post_request(api, fmt=fmt, api_key="og_nope_nope"), 403),
        (await post_request(api, fmt=fmt, service_code="no_such"), 400),
        (await post_request(api, fmt=fmt, lat="north"), 400),
        (await post_request(api, fmt=fmt, lat="", long="", address_string="外滩"), 400),
        (await post_request(api, fmt=fmt, description="x" * 4001), 400),
        (await api.client.get(f"/open311/v2/services/no_such.{fmt}"), 404),
        (await api.client.get(f"/open311/v2/requests.{fmt}", params={"api_key": "og_nope_nope"}), 403),
        (await api.client.get(f"/open311/v2/requests.{fmt}",
                              params={"api_key": api.tokens["street_a"], "start_date": "yesterday"}), 400),
        (await api.client.get(f"/open311/v2/requests/SH-00000000-000000.{fmt}",
                              params={"api_key": api.tokens["street_a"]}), 404),
    ]
    for response, code in cases:
        assert response.status_code == code, response.text
        if fmt == "json":
            body = response.json()
        else:
            root = fromstring(response.content)
            assert root.tag == "errors"
            body = [{"code": int(e.find("code").text), "description": e.find("description").text} for e in root]
        assert len(body) == 1 and body[0]["code"] == code and body[0]["description"]


async def test_status_mapping_notes_and_fixmystreet_extensions(api) -> None:
    number = (await post_request(api)).json()[0]["service_request_id"]
    q = {"api_key": api.tokens["admin"]}
    [case] = (await api.client.get(f"/open311/v2/requests/{number}.json", params=q)).json()
    from sqlmodel import select

    from models.tables import Case

    with api.ctx.sessions() as s:
        case_id = s.exec(select(Case.id).where(Case.number == number)).one()
    api.clock.advance(minutes=1)
    apply_action(api.ctx, case_id=case_id, action=Action.CANCEL, actor=Actor(Role.DISPATCHER),
                 note="Not a public matter")
    [closed] = await both(api, f"/open311/v2/requests/{number}", "requests.json", **q)
    [extended] = await both(api, f"/open311/v2/requests/{number}", "requests.json", extensions="true", **q)
    assert case["status"] == "open" and case["status_notes"] == "Registered; waiting for dispatch."
    assert "extended_status" not in case
    assert closed["status"] == "closed" and closed["status_notes"] == "Not a public matter"
    assert extended["extended_status"] == "CLOSED" and extended["onegrid_status"] == "cancelled"


async def test_get_requests_filters_and_the_default_window(api) -> None:
    q = {"api_key": api.tokens["admin"]}
    old = (await post_request(api, description="old")).json()[0]["service_request_id"]
    api.clock.advance(days=91)
    new = (await post_request(api, description="new")).json()[0]["service_request_id"]
    default = await both(api, "/open311/v2/requests", "requests.json", **q)
    assert [r["service_request_id"] for r in default] == [new]  # the last 90 days
    by_id = (await api.client.get("/open311/v2/requests.json", params={**q, "service_request_id": f"{old},{new}"}))
    assert {r["service_request_id"] for r in by_id.json()} == {old, new}
    window = (await api.client.get("/open311/v2/requests.json", params={
        **q, "start_date": "2026-11-20T00:00:00+08:00", "end_date": "2026-12-20T00:00:00+08:00"})).json()
    assert [r["service_request_id"] for r in window] == [old]
    too_long = await api.client.get("/open311/v2/requests.json", params={
        **q, "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-12-01T00:00:00Z"})
    assert too_long.status_code == 400
    closed = (await api.client.get("/open311/v2/requests.json", params={**q, "status": "closed"})).json()
    other_code = (await api.client.get("/open311/v2/requests.json", params={**q, "service_code": "fallen_tree"})).json()
    assert closed == [] and other_code == []
    since = (await api.client.get("/open311/v2/requests.json", params={
        **q, "updated_after": "2026-11-21T00:00:00Z"})).json()
    assert [r["service_request_id"] for r in since] == [old, new]  # oldest change first, for polling


async def test_a_key_outside_the_area_cannot_post_there(api) -> None:
    lat, lon = api.point(STREET_B)
    r = await post_request(api, key="street_a", lat=str(lat), long=str(lon))
    assert r.status_code == 403 and "area" in r.json()[0]["description"]


async def test_xml_with_entities_is_refused_by_the_parser() -> None:
    bomb = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
    <service_requests><request><service_request_id>&lol2;</service_request_id></request></service_requests>"""
    with pytest.raises(ValueError, match="unsafe or malformed"):
        requests_from_xml(bomb)
    external = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
    <service_requests><request><description>&x;</description></request></service_requests>"""
    with pytest.raises(ValueError):
        requests_from_xml(external)


async def test_our_xml_reads_back_as_the_json_answer(api) -> None:
    await post_request(api, description='Quotes " and <tags> & ampersands')
    q = {"api_key": api.tokens["admin"]}
    j = (await api.client.get("/open311/v2/requests.json", params=q)).json()
    x = requests_from_xml((await api.client.get("/open311/v2/requests.xml", params=q)).content)
    assert x == j and j[0]["description"] == 'Quotes " and <tags> & ampersands'
