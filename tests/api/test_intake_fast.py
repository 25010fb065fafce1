"""Keyed machine intake past the framework (api/intake_fast.py) answers exactly as the framework's route.

Two OneGrid apps get the same requests in the same order: one takes keyed intake past the framework,
the other (`keyed_intake = None`) through FastAPI's route, dependencies and middleware. Their answers
must be the same for any mix of keys, Idempotency-Keys, content types, bodies and request ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from models.tables import Case
from onegrid.app import OneGrid, build
from tests.api.conftest import STREET_A, STREET_B, api_settings, client_for, machine_event_log, prepare_store

KEYS = ("intake", "reader", "slow", "unknown", "none", "basic")
# (what the caller sends, how the Idempotency-Key header is made from it)
IDEMPOTENCY = ("fresh", "absent", "empty", "too_long", "not_ascii", "again_same", "again_other")
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "text/plain", None, "application/merge+json")
BODIES = ("valid", "folds", "not_json", "no_category", "extra_field", "unknown_category", "other_street",
          "bad_lat", "not_an_object")
REQUEST_IDS = (None, "lb-req-0001-abcdef", "not a sane id")


def _apps(db, clock, tmp_path, demo_map, sqlite_template) -> tuple[OneGrid, OneGrid]:  # noqa: ANN001
    fast = build(api_settings(db.url, tmp_path / "fast"), clock=clock)
    reference = tmp_path / "framework.sqlite3"
    shutil.copy(sqlite_template, reference)
    framework = build(api_settings(f"sqlite:///{reference}", tmp_path / "framework"), clock=clock)
    framework.api.keyed_intake = None  # every request through FastAPI's route
    assert fast.api.keyed_intake is not None
    return fast, framework


@pytest.fixture
def pair(db, clock, tmp_path, demo_map, sqlite_template):  # noqa: ANN001, ANN201
    from services.api_keys import create_key

    apps = _apps(db, clock, tmp_path, demo_map, sqlite_template)
    tokens: list[dict[str, str]] = []
    for app in apps:
        prepare_store(app, demo_map)
        tokens.append({
            "intake": create_key(app.ctx, name="cameras", scopes=["read", "intake"], area_code=STREET_A)[1],
            "reader": create_key(app.ctx, name="reader", scopes=["read"], area_code=STREET_A)[1],
            "slow": create_key(app.ctx, name="slow", scopes=["intake"], area_code=STREET_A, rate_per_minute=20)[1],
        })
    yield apps, tokens
    for app in apps:
        app.engine.dispose()


def _body(kind: str, event: int, demo_map) -> bytes:  # noqa: ANN001
    street = STREET_B if kind == "other_street" else STREET_A
    lat, lon = demo_map.points[street][event % 3]
    body: dict[str, Any] = {"source": "camera", "source_event_id": f"ev-{event}", "device_id": f"cam-{event % 2}",
                            "category_code": "exposed_garbage", "lat": lat, "lon": lon, "description": "seen"}
    if kind == "folds":
        body["source_event_id"] = f"ev-{event}-again"  # the same device and place: folds into its open case
    elif kind == "no_category":
        del body["category_code"]
    elif kind == "extra_field":
        body["colour"] = "red"
    elif kind == "unknown_category":
        body["category_code"] = "no_such_category"
    elif kind == "bad_lat":
        body["lat"] = 123.0
    elif kind == "not_json":
        return b'{"source": "camera",'
    elif kind == "not_an_object":
        return b'["camera"]'
    return json.dumps(body).encode()


def _headers(tokens: dict[str, str], spec: dict[str, Any], idem: str | None) -> dict[str, str | bytes]:
    headers: dict[str, str | bytes] = {}
    key = spec["key"]
    if key in tokens:
        headers["Authorization"] = f"Bearer {tokens[key]}"
    elif key == "unknown":
        headers["Authorization"] = "Bearer og_nosuchkey_secret"
    elif key == "basic":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    if idem is not None:
        headers["Idempotency-Key"] = idem.encode("latin-1")
    if spec["content_type"] is not None:
        headers["Content-Type"] = spec["content_type"]
    if spec["request_id"] is not None:
        headers["X-Request-ID"] = spec["request_id"]
    return headers


def _idempotency(kind: str, serial: int, earlier: list[str]) -> str | None:
    if kind == "absent":
        return None
    if kind == "empty":
        return ""
    if kind == "too_long":
        return "k" * 300
    if kind == "not_ascii":
        return "clé-é"  # (sent in Latin-1, as HTTP allows)
    if kind.startswith("again") and earlier:
        return earlier[-1]
    return f"key-{serial}"


def _seen(response: httpx.Response, spec: dict[str, Any]) -> tuple:
    """What a caller notices of an answer: status, body, every header (a request id the server made up: its form)."""
    try:
        body: Any = _without_ids(response.json())
    except ValueError:
        body = response.text
    headers: dict[str, Any] = {name: value for name, value in response.headers.items()
                               if name not in ("x-request-id", "content-length")}  # (lengths: ids differ by store)
    rid = response.headers.get("x-request-id")
    given_id = spec["request_id"]
    headers["x-request-id"] = rid if given_id == "lb-req-0001-abcdef" else bool(re.fullmatch("[0-9a-f]{32}", rid or ""))
    return response.status_code, body, headers


def _mostly(usual: Any, every: tuple) -> st.SearchStrategy:
    """`usual` half the time (the requests that go past the framework), any of `every` otherwise."""
    return st.one_of(st.just(usual), st.sampled_from(every))


def _without_ids(value: Any) -> Any:
    """A body without its row ids (PostgreSQL's reserved keys leave gaps that SQLite's do not)."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


_SPEC = st.fixed_dictionaries({
    "key": _mostly("intake", KEYS), "idempotency": _mostly("fresh", IDEMPOTENCY),
    "content_type": _mostly("application/json", CONTENT_TYPES), "body": st.sampled_from(BODIES),
    "request_id": st.sampled_from(REQUEST_IDS), "event": st.integers(0, 5)})


def _usual(body: str = "valid", key: str = "intake", idempotency: str = "fresh", event: int = 0) -> dict[str, Any]:
    return {"key": key, "idempotency": idempotency, "content_type": "application/json", "body": body,
            "request_id": None, "event": event}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(_SPEC, min_size=1, max_size=8))
# The answers past the framework, each at least once: (the key's first use goes through the app)
@example(specs=[_usual(), _usual(event=1), _usual(event=1, idempotency="again_same"),  # created, replayed
                _usual(event=2, idempotency="again_other"), _usual("folds", event=2),  # key reused, folded
                _usual("unknown_category", event=3), _usual("other_street", event=4),  # refusals
                _usual(event=5, idempotency="too_long"), _usual(event=5, idempotency="empty")])
@example(specs=[_usual(key="reader"), _usual(key="reader", event=1),  # lacks the intake scope
                _usual(key="slow"), _usual(key="slow", event=1), _usual(key="slow", event=2)])  # rate limited
def test_past_the_framework_or_through_it_every_request_gets_the_same_answer(pair, demo_map, clock, specs) -> None:  # noqa: ANN001
    apps, tokens = pair
    counter = test_past_the_framework_or_through_it_every_request_gets_the_same_answer.__dict__
    serial = counter["serial"] = counter.get("serial", 0) + 1

    async def send() -> list[tuple[tuple, tuple]]:
        seen = []
        earlier: list[str] = []
        bodies: dict[str, bytes] = {}
        async with client_for(apps[0]) as fast, client_for(apps[1]) as framework:
            for n, spec in enumerate(specs):
                idem = _idempotency(spec["idempotency"], serial * 100 + n, earlier)
                body = _body(spec["body"], spec["event"], demo_map)
                if spec["idempotency"] == "again_same" and idem in bodies:
                    body = bodies[idem]
                elif spec["idempotency"] == "again_other" and bodies.get(idem) == body:
                    body += b" "  # another body under the same key
                answers = []
                for client, app_tokens in ((fast, tokens[0]), (framework, tokens[1])):
                    r = await client.post("/api/v1/cases", content=body, headers=_headers(app_tokens, spec, idem))
                    answers.append(_seen(r, spec))
                if idem:
                    earlier.append(idem)
                    bodies.setdefault(idem, body)
                seen.append((spec, *answers))
                clock.advance(seconds=1)
        return seen

    for spec, fast_answer, framework_answer in asyncio.run(send()):
        assert fast_answer == framework_answer, spec


async def test_an_answer_past_the_framework_is_counted_and_logged_under_its_request_id(api) -> None:
    await api.intake("street_a", headers={"Idempotency-Key": "first"})  # (the key's first use is checked by the app)
    with machine_event_log() as seen:
        r = await api.intake("street_a", event="e2", n=1, device="cam-2",
                             headers={"Idempotency-Key": "second", "X-Request-ID": "lb-req-0002-abcdef"})
    assert r.status_code == 201 and r.headers["X-Request-ID"] == "lb-req-0002-abcdef"
    assert seen == [(r.json()["case"]["number"], "lb-req-0002-abcdef")]
    metrics = (await api.client.get("/metrics")).text
    line = next(line for line in metrics.splitlines() if line.startswith("onegrid_http_request_duration_seconds_count")
                and 'route="/api/v1/cases"' in line and 'status="201"' in line and 'method="POST"' in line)
    assert float(line.rsplit(" ", 1)[1]) == 2.0


async def test_a_fault_past_the_framework_answers_500_and_stores_nothing(api, monkeypatch, caplog) -> None:
    await api.intake("street_a", headers={"Idempotency-Key": "first"})

    async def broken(event):  # noqa: ANN001, ANN202 - the store went away under the writer
        raise ConnectionError("the store went away")

    monkeypatch.setattr(api.app.api.state.intake_writer, "write", broken)
    with caplog.at_level(logging.ERROR):
        r = await api.intake("street_a", event="e2", n=1, device="cam-2", headers={"Idempotency-Key": "second"})
    assert r.status_code == 500 and r.text == "Internal Server Error" and r.headers["X-Request-ID"]
    assert "the store went away" in caplog.text
    with api.ctx.sessions() as s:
        assert s.exec(select(func.count()).select_from(Case)).one() == 1


async def test_a_body_longer_than_its_content_length_is_refused_413(api) -> None:
    await api.intake("street_a", headers={"Idempotency-Key": "first"})
    chunks = [b'{"source": "camera", "description": "', b"x" * (300 * 1024), b'"}']
    sent: list[dict] = []

    async def receive() -> dict:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/v1/cases", "raw_path": b"/api/v1/cases", "query_string": b"", "root_path": "",
             "server": ("onegrid.test", 80), "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"onegrid.test"), (b"content-type", b"application/json"),
                         (b"content-length", b"100"), (b"idempotency-key", b"big"),
                         (b"authorization", f"Bearer {api.tokens['street_a']}".encode())]}
    await api.app.api(scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {"detail": "request body over 262144 bytes", "code": "too_large"}
    with api.ctx.sessions() as s:
        assert s.exec(select(func.count()).select_from(Case)).one() == 1
