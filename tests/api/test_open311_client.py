"""The whole GeoReport v2 round trip with a third-party client from PyPI, against OneGrid served by uvicorn.

The client is `georeport` (PyPI, 0.3.x, 2025): the maintained Python GeoReport v2 client that
installs on Python 3.11 (`open311` 1.1 and `three` 0.8 are Python 2 code). It reads with `requests`
exactly as it would read any city, sending no key. It has no call that creates a request, so the POST
is made as such a client makes it: a form-encoded POST of `requests.json` with `api_key` and
`attribute[code]` fields, over plain HTTP (httpx). Every answer is validated against the bundled
Open311 JSON schemas.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import uvicorn
from georeport import GeoReport
from jsonschema import Draft4Validator

from tests.api.conftest import STREET_A, load_schema, open311_validator

QUESTIONS = [
    {"code": "volume", "datatype": "singlevaluelist", "required": True, "description": "How much garbage?",
     "values": [{"key": "bag", "name": "A bag"}, {"key": "pile", "name": "A pile"}]},
    {"code": "kinds", "datatype": "multivaluelist", "description": "What kind?",
     "values": [{"key": "food", "name": "Food waste"}, {"key": "bulky", "name": "Bulky items"}]},
    {"code": "bags", "datatype": "number", "description": "How many bags?"},
    {"code": "seen_at", "datatype": "datetime", "description": "When did you see it?"},
    {"code": "note", "datatype": "text", "description": "Anything else?"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_pypi_georeport_client_makes_the_whole_round_trip(api) -> None:
    r = await api.client.put("/api/v1/categories/exposed_garbage/questions", json=QUESTIONS, headers=api.auth("admin"))
    assert r.status_code == 200, r.text
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api.app.api, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # polling a starting server, not letting time pass
        assert not serving.done()
        await asyncio.sleep(0.01)
    root = f"http://127.0.0.1:{port}/open311/v2"
    try:
        await asyncio.to_thread(_round_trip, api, root)
    finally:
        server.should_exit = True
        await serving


def _round_trip(api, root: str) -> None:  # noqa: ANN001 - blocking: the client uses `requests`
    client, xml_client = GeoReport(root), GeoReport(root, output_format="xml")

    services = client.get_service_list()
    open311_validator("services.json").validate(services)
    garbage = next(s for s in services if s["service_code"] == "exposed_garbage")
    assert garbage["metadata"] is True
    assert any(s["metadata"] is False for s in services)  # categories without questions say so

    definition = client.get_service_definition("exposed_garbage")
    open311_validator("service-definition.json").validate(definition)
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert [a["datatype"] for a in definition["attributes"]] == [q["datatype"] for q in QUESTIONS]
    assert attributes["volume"]["required"] is True and attributes["volume"]["variable"] is True
    assert attributes["kinds"]["values"] == [{"key": "food", "name": "Food waste"},
                                             {"key": "bulky", "name": "Bulky items"}]
    xml_definition = xml_client.get_service_definition("exposed_garbage")
    assert xml_definition["service_code"] == "exposed_garbage"
    assert [a["code"] for a in xml_definition["attributes"]["attribute"]] == [q["code"] for q in QUESTIONS]

    lat, lon = api.point(STREET_A)
    form = {"api_key": api.tokens["street_a"], "service_code": "exposed_garbage", "lat": str(lat), "long": str(lon),
            "description": "Bags by the gate, call me at 13812345678", "attribute[volume]": "pile",
            "attribute[kinds][]": ["food", "bulky"], "attribute[bags]": "4", "attribute[seen_at]": "2026-11-21T07:30:00+08:00"}
    # httpx's own 5 s default once ran out on a loaded CI machine; `requests` (the GET client) waits as long as needed.
    post = partial(httpx.post, timeout=60)
    refused = post(f"{root}/requests.json", data={**form, "attribute[volume]": "truck"})
    assert refused.status_code == 400 and "volume" in refused.json()[0]["description"]
    keyless = post(f"{root}/requests.json", data={k: v for k, v in form.items() if k != "api_key"})
    assert keyless.status_code == 403  # keys stay required for POST
    created = post(f"{root}/requests.json", data=form)
    assert created.status_code == 200, created.text
    Draft4Validator(load_schema("swagger.json")["definitions"]["RequestResponse"]).validate(created.json()[0])
    number = created.json()[0]["service_request_id"]

    one = client.get_service_request(number)  # no key: the public view
    open311_validator("requests.json").validate([one])
    assert one["service_request_id"] == number and one["status"] == "open"
    assert one["description"] == "Bags by the gate, call me at 138****5678"
    assert one["lat"] == round(lat, 3) and one["long"] == round(lon, 3)
    xml_one = xml_client.get_service_request(number)
    assert xml_one["service_request_id"] == number and xml_one["description"] == one["description"]
    assert float(xml_one["lat"]) == one["lat"] and xml_one["status"] == "open"

    now = api.clock.now()
    day = timedelta(days=1)
    searches = {
        "id": {"service_request_id": number},
        "status": {"status": "open"},
        "service": {"service_code": "exposed_garbage"},
        "dates": {"start_date": (now - day).isoformat(), "end_date": (now + day).isoformat()},
    }
    for name, search in searches.items():
        found = client.get_service_requests(**search)
        open311_validator("requests.json").validate(found)
        assert [r["service_request_id"] for r in found] == [number], name
    xml_found = xml_client.get_service_requests(service_request_id=number, status="open")
    assert xml_found["service_request_id"] == number  # xmltodict: one request is a dict
    misses: list[dict[str, Any]] = [
        {"status": "closed"}, {"service_code": "fallen_tree"},
        {"start_date": (now + day).isoformat(), "end_date": (now + 2 * day).isoformat()},
    ]
    for search in misses:
        assert client.get_service_requests(**search) == [], search
