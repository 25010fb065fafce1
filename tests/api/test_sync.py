"""Upstream sync: the outbox relay's retries and dead letters, signed pushes, polling, and two OneGrids.

The fault tests use a fake upstream behind httpx's transport interface (500, timeout, 429, 4xx on
script). The two-instance tests run a district OneGrid (on the parametrized store) whose relay
talks over a loopback port to a city OneGrid (its own SQLite store) served by uvicorn in-process.
Time moves only by the FakeClock; nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlmodel import select

from models.api import SyncLink
from models.lifecycle import Action, Actor, Role, Status
from models.tables import Case, CaseEvent, OutboxItem, OutboxStatus
from onegrid.app import OneGrid, build
from onegrid.clock import FakeClock
from services.api_keys import authenticate, create_key
from services.cases import apply_action
from services.db import upgrade
from services.upstream import (
    NotVisible,
    UpstreamRelay,
    apply_downstream_event,
    dead_letters,
    make_client,
    poll_upstream_once,
    retry_dead_letters,
    sign_push,
)
from services.upstream_relay import BATCH_PATH, SYNC_PATH, due_heads
from tests.api.conftest import STREET_A, api_settings, client_for, prepare_store

# ---------------------------------------------------------------------------- a scripted fake upstream


@dataclass
class FakeUpstream:
    """Answers the relay by script: "500", "timeout", "429", "400", then "ok" for ever.

    Without `batches` it is an upstream that takes one event per request (the batch path answers
    404, as any server without the route would); with it, a batch is scripted as one request.
    """

    script: list[str] = field(default_factory=list)
    batches: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)  # accepted events, in arrival order
    attempts: list[str] = field(default_factory=list)  # event id of every event tried, batch or single
    paths: list[str] = field(default_factory=list)  # path of every request
    requests: list[list[str]] = field(default_factory=list)  # event ids of every request answered 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == BATCH_PATH and not self.batches:
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        events = body["events"] if request.url.path == BATCH_PATH else [body]
        if request.url.path == SYNC_PATH:
            assert request.headers["Idempotency-Key"] == body["event_id"]
        self.attempts.extend(e["event_id"] for e in events)
        step = self.script.pop(0) if self.script else "ok"
        if step == "timeout":
            raise httpx.ReadTimeout("upstream too slow", request=request)
        if step == "500":
            return httpx.Response(500, text="upstream broke")
        if step == "429":
            return httpx.Response(429, headers={"Retry-After": "120"}, text="slow down")
        if step == "400":
            return httpx.Response(400, json={"detail": "no"})
        self.received.extend(events)
        self.requests.append([e["event_id"] for e in events])
        if request.url.path == SYNC_PATH:
            return httpx.Response(200, json={"service_request_id": f"CITY-{body['case']['number']}"})
        return httpx.Response(200, json={"results": [
            {"event_id": e["event_id"], "status": "accepted", "service_request_id": f"CITY-{e['case']['number']}"}
            for e in events]})


def relay_for(api, upstream: FakeUpstream) -> UpstreamRelay:
    client = make_client(api.app.settings, transport=httpx.MockTransport(upstream.handler))
    return UpstreamRelay(api.ctx, client, base_url="http://city.test", api_key="og_x_y")


def outbox(api) -> list[OutboxItem]:
    with api.ctx.sessions() as s:
        return list(s.exec(select(OutboxItem).order_by(OutboxItem.id)))


async def test_500_timeout_and_429_are_retried_with_backoff_then_delivered(api) -> None:
    await api.intake("street_a", event="r1")
    upstream = FakeUpstream(script=["500", "timeout", "429"])
    relay = relay_for(api, upstream)
    settings = api.app.settings
    waits = []
    for attempt in (1, 2, 3):
        assert await relay.run_once() >= 1
        head, second = outbox(api)[:2]
        assert head.status == OutboxStatus.PENDING and head.attempts == attempt
        assert second.attempts == 0  # the case's second event waits its turn, untried
        wait = (head.next_attempt_at - api.clock.now()).total_seconds()
        waits.append(wait)
        assert await relay.run_once() == 0  # not due yet: no hammering
        api.clock.advance(seconds=wait)
    low = settings.upstream_backoff_initial_s
    assert low <= waits[0] <= 2 * low and 2 * low <= waits[1] <= 3 * low  # exponential, with jitter
    assert waits[2] >= 120  # the 429's Retry-After outweighs the backoff
    while await relay.run_once():
        pass
    assert [o.status for o in outbox(api)] == [OutboxStatus.SENT] * len(outbox(api))
    first_id = f"onegrid:{outbox(api)[0].id}"
    assert upstream.attempts[:4] == [first_id] * 4  # every retry carried the same Idempotency-Key
    assert [e["topic"] for e in upstream.received] == ["case.report", "case.register"]
    assert [e["seq"] for e in upstream.received] == [1, 2]
    with api.ctx.sessions() as s:
        assert s.exec(select(Case.external_id)).one().startswith("CITY-SH-")
    assert relay.stats.by_outcome == {"http_5xx": 1, "timeout": 1, "http_429": 1, "sent": 2}
    await relay.client.aclose()


async def test_refusals_and_exhausted_tries_become_dead_letters_that_hold_back_their_case(api) -> None:
    await api.intake("street_a", event="d1")
    upstream = FakeUpstream(script=["400"])
    relay = relay_for(api, upstream)
    await relay.run_once()
    [dead] = dead_letters(api.ctx)
    assert dead.topic == "case.report" and "HTTP 400" in dead.last_error
    api.clock.advance(hours=1)
    assert await relay.run_once() == 0  # the register event waits behind its dead report
    assert retry_dead_letters(api.ctx) == 1
    while await relay.run_once():
        pass
    assert [e["topic"] for e in upstream.received] == ["case.report", "case.register"]
    # Tries run out: after upstream_max_attempts failures the event is dead, nothing is lost.
    api.app.settings.upstream_max_attempts = 2
    await api.intake("street_a", event="d2", device="cam-2")
    upstream.script = ["500", "500"]
    await relay.run_once()
    api.clock.advance(hours=1)
    await relay.run_once()
    assert [d.attempts for d in dead_letters(api.ctx)] == [2]
    await relay.client.aclose()


# ---------------------------------------------------------------------------- two OneGrids on loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """An ASGI app served by uvicorn in this event loop on a loopback port; recording sync requests."""

    def __init__(self, asgi: Any, port: int) -> None:
        self.port, self.sync_requests = port, []
        self.server = uvicorn.Server(uvicorn.Config(self._recording(asgi), host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="off"))
        self.task: asyncio.Task | None = None

    def _recording(self, asgi: Any) -> Any:
        """Records the event ids of each sync request (single or batch) that the city answered 200."""
        async def app(scope, receive, send):  # noqa: ANN001, ANN202
            if scope["type"] != "http" or not scope["path"].startswith(SYNC_PATH):
                return await asgi(scope, receive, send)
            chunks, status = [], []

            async def reading():  # noqa: ANN202
                message = await receive()
                chunks.append(message.get("body", b""))
                return message

            async def sending(message):  # noqa: ANN001, ANN202
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            await asgi(scope, reading, sending)
            if status == [200]:
                body = json.loads(b"".join(chunks))
                self.sync_requests.append([e["event_id"] for e in body.get("events", [body])])
        return app

    async def start(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # polling a starting server, not waiting for time to pass
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class City:
    app: OneGrid
    clock: FakeClock
    district_token: str
    port: int


@pytest.fixture
def city(tmp_path: Path, demo_map, sqlite_template) -> City:
    import shutil

    path = tmp_path / "city" / "city.sqlite3"
    path.parent.mkdir()
    shutil.copy(sqlite_template, path)
    clock = FakeClock()
    app = build(api_settings(f"sqlite:///{path}", tmp_path / "city", instance_id="city"), clock=clock)
    prepare_store(app, demo_map)
    # The city's clock stands still in these tests, so its per-key rate limit is set out of the way.
    _, token = create_key(app.ctx, name="Huangpu district", scopes=["intake", "read"], area_code="SH-HP",
                          rate_per_minute=1_000_000)
    yield City(app, clock, token, free_port())
    app.engine.dispose()


def district_relay(api, city: City) -> UpstreamRelay:
    settings = api.app.settings
    settings.instance_id = "huangpu"
    return UpstreamRelay(api.ctx, make_client(settings), base_url=f"http://127.0.0.1:{city.port}",
                         api_key=city.district_token)


def next_due(ctx) -> datetime | None:
    """When the earliest sendable (head-of-case) event is due; None when nothing is pending."""
    with ctx.sessions() as s:
        heads = due_heads(s, datetime(9999, 1, 1, tzinfo=UTC), 10_000)
    return min((h.next_attempt_at for h in heads), default=None)


async def drain(relay: UpstreamRelay, clock: FakeClock) -> None:
    """Run the relay until nothing is pending, moving the fake clock past each backoff."""
    for _ in range(10_000):
        if await relay.run_once():
            continue
        due = next_due(relay.ctx)
        if due is None:
            assert dead_letters(relay.ctx) == []
            return
        clock.set(max(clock.now(), due))
    raise AssertionError("relay did not drain")


def city_view(city: City) -> dict[str, tuple]:
    """origin number → (status, category, lat, lon, report_count, [actions]) as the city holds it."""
    with city.app.ctx.sessions() as s:
        out = {}
        for link, case in s.exec(select(SyncLink, Case).join(Case, Case.id == SyncLink.case_id)):
            actions = s.exec(select(CaseEvent.action).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)).all()
            out[link.origin_number] = (str(case.status), case.category_code, case.lat, case.lon, case.report_count,
                                       [str(a) for a in actions])
        return out


def district_view(api) -> dict[str, tuple]:
    with api.ctx.sessions() as s:
        out = {}
        for case in s.exec(select(Case)):
            actions = s.exec(select(CaseEvent.action).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)).all()
            out[case.number] = (str(case.status), case.category_code, case.lat, case.lon, case.report_count,
                                [str(a) for a in actions])
        return out


async def test_upstream_down_for_the_whole_test_then_up_every_event_once_in_order(api, city) -> None:
    relay = district_relay(api, city)
    # Changes pile up while the city is unreachable (nothing listens on its port).
    ids = [(await api.intake("street_a", event=f"e{i}", n=i)).json()["case"]["id"] for i in range(3)]
    for case_id in ids[:2]:
        api.clock.advance(minutes=1)
        apply_action(api.ctx, case_id=case_id, action=Action.DISPATCH, actor=Actor(Role.DISPATCHER))
    apply_action(api.ctx, case_id=ids[0], action=Action.CANCEL, actor=Actor(Role.DISPATCHER), note="cleared")
    folded = await api.intake("street_a", event="e9", n=1, media_urls=["https://cam.example/9.jpg"])
    assert folded.json()["outcome"] == "folded"
    assert await relay.run_once() == len(outbox(api))  # all due: each case's run, tried from its head
    for _ in range(12):
        api.clock.set(max(api.clock.now(), next_due(api.ctx)))
        assert await relay.run_once() >= 1  # the city stays down: each due try fails and is rescheduled
    rows = outbox(api)
    assert all(o.status == OutboxStatus.PENDING for o in rows)
    assert sum(o.attempts for o in rows) == 15 and "ConnectError" in rows[0].last_error
    assert {o.attempts for o in rows if o.topic != "case.report"} == {0}  # nothing sent out of order
    served = await Served(city.app.api, city.port).start()
    try:
        await drain(relay, api.clock)
    finally:
        await served.stop()
        await relay.client.aclose()
    rows = outbox(api)
    assert all(o.status == OutboxStatus.SENT for o in rows)
    # Exactly once: each event id reached the city in one successful request, and the city applied
    # each case's events in the district's order (the timelines are identical).
    accepted = [event_id for request in served.sync_requests for event_id in request]
    assert sorted(accepted) == sorted(f"huangpu:{o.id}" for o in rows)
    assert len(served.sync_requests) < len(rows)  # in batches, not one request per event
    assert city_view(city) == district_view(api)
    with api.ctx.sessions() as s:
        assert all(c.external_id for c in s.exec(select(Case)))


@pytest.mark.slow
async def test_district_and_city_stay_consistent_after_a_burst(api, city) -> None:
    burst = 1000  # the burst; about a minute per database
    relay = district_relay(api, city)
    served = await Served(city.app.api, city.port).start()
    try:
        relay_task = asyncio.create_task(drain_forever(relay))
        points = api.map.points[STREET_A]
        api.key("burst", ["intake"], STREET_A, rate_per_minute=1_000_000)  # the fake clock stands still
        created = []
        for i in range(burst):
            r = await api.intake("burst", event=f"b{i}", device=f"cam-{i}", n=i % len(points))
            created.append(r.json()["case"]["id"])
        for case_id in created[::3]:
            apply_action(api.ctx, case_id=case_id, action=Action.DISPATCH, actor=Actor(Role.DISPATCHER))
        for case_id in created[::5]:
            apply_action(api.ctx, case_id=case_id, action=Action.CANCEL, actor=Actor(Role.DISPATCHER), note="n/a")
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)
        await drain(relay, api.clock)
        assert city_view(city) == district_view(api)
        assert len(city_view(city)) == burst
        # The district polls the city's Open311 feed: its own cases come back recognised, none imported twice.
        counts = await poll_upstream_once(api.ctx, relay.client, base_url=served.url,
                                          api_key=city.district_token)
        assert counts == {"unchanged": burst}
        assert len(district_view(api)) == burst
    finally:
        await served.stop()
        await relay.client.aclose()


async def drain_forever(relay: UpstreamRelay) -> None:
    while True:
        if not await relay.run_once():
            await asyncio.sleep(0)


async def test_polling_imports_upstream_cases_and_follows_their_close(api, city) -> None:
    served = await Served(city.app.api, city.port).start()
    client = make_client(api.app.settings)
    try:
        lat, lon = api.point(STREET_A, 3)
        async with client_for(city.app) as city_client:
            _, city_key = create_key(city.app.ctx, name="hotline", scopes=["write", "read"])
            r = await city_client.post("/open311/v2/requests.json", data={
                "api_key": city_key, "service_code": "fallen_tree", "lat": str(lat), "long": str(lon),
                "description": "12345 hotline: tree on the road"})
            number = r.json()[0]["service_request_id"]
            counts = await poll_upstream_once(api.ctx, client, base_url=served.url, api_key=city.district_token)
            again = await poll_upstream_once(api.ctx, client, base_url=served.url, api_key=city.district_token)
            with api.ctx.sessions() as s:
                local = s.exec(select(Case).where(Case.external_id == number)).one()
            assert counts == {"imported": 1} and again == {"unchanged": 1}
            assert local.source == "upstream" and local.status == Status.REGISTERED
            assert local.description == "12345 hotline: tree on the road"
            # The city closes it (cancelled as not a public matter): the district follows on the next poll.
            with city.app.ctx.sessions() as s:
                city_case = s.exec(select(Case).where(Case.number == number)).one()
            city.clock.advance(minutes=5)
            apply_action(city.app.ctx, case_id=city_case.id, action=Action.CANCEL, actor=Actor(Role.DISPATCHER),
                         note="Handled by the park office")
            counts = await poll_upstream_once(api.ctx, client, base_url=served.url, api_key=city.district_token)
            with api.ctx.sessions() as s:
                local = s.get(Case, local.id)
                note = s.exec(select(CaseEvent.note).where(CaseEvent.case_id == local.id)
                              .order_by(CaseEvent.id.desc())).first()
            assert counts == {"closed": 1} and local.status == Status.CANCELLED
            assert note == "Closed at the platform of record: Handled by the park office"
    finally:
        await client.aclose()
        await served.stop()


async def test_signed_push_from_the_upstream(api) -> None:
    api.app.settings.upstream_push_secret = SecretStr("s3cret")
    lat, lon = api.point(STREET_A, 4)
    body = json.dumps({"requests": [{"service_request_id": "CITY-77", "status": "open", "service_code": "fallen_tree",
                                     "lat": lat, "long": lon, "description": "pushed"}]}).encode()
    now = int(api.clock.now().timestamp())

    async def push(payload: bytes, ts: int, secret: str = "s3cret") -> httpx.Response:
        return await api.client.post("/api/v1/sync/push", content=payload, headers={
            "Content-Type": "application/json", "X-OneGrid-Timestamp": str(ts),
            "X-OneGrid-Signature": sign_push(secret, ts, payload)})

    assert (await push(body, now, secret="wrong")).status_code == 401
    assert (await push(body, now - 301)).status_code == 401  # a captured push cannot be replayed later
    tampered = await api.client.post("/api/v1/sync/push", content=body.replace(b"pushed", b"hacked"), headers={
        "Content-Type": "application/json", "X-OneGrid-Timestamp": str(now),
        "X-OneGrid-Signature": sign_push("s3cret", now, body)})
    assert tampered.status_code == 401
    with api.ctx.sessions() as s:
        assert s.exec(select(Case)).first() is None
    first = await push(body, now)
    again = await push(body, now)
    assert first.json() == {"outcomes": {"imported": 1}} and again.json() == {"outcomes": {"unchanged": 1}}
    closing = json.dumps([{"service_request_id": "CITY-77", "status": "closed", "status_notes": "done upstream"}])
    r = await push(closing.encode(), now)
    assert r.json() == {"outcomes": {"closed": 1}}
    with api.ctx.sessions() as s:
        case = s.exec(select(Case).where(Case.external_id == "CITY-77")).one()
    assert case.status == Status.CANCELLED and case.source == "upstream"


async def test_a_district_key_cannot_sync_a_case_outside_its_area(api, city) -> None:
    principal = authenticate(city.app.ctx, token=city.district_token)
    lat, lon = api.point("SH-XH-01")  # Xuhui district: outside Huangpu
    event = {"origin": "huangpu", "topic": "case.report", "seq": 1, "actor_role": "system",
             "payload": {"number": "X-1", "action": "report", "to": "reported", "at": city.clock.now().isoformat()},
             "case": {"number": "X-1", "source": "camera", "category_code": "exposed_garbage", "lat": lat,
                      "lon": lon}}
    with pytest.raises(NotVisible):
        apply_downstream_event(city.app.ctx, principal=principal, event=event)
    with city.app.ctx.sessions() as s:
        assert s.exec(select(Case)).first() is None
