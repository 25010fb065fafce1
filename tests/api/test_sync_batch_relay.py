"""The relay in batches: whole runs of a case per batch, fallback to one event per request, partial failure, lost answers.

The district is the `api` fixture (SQLite and PostgreSQL). The upstream is either the scripted fake
of tests/api/test_sync.py or the real city OneGrid (its own SQLite store) reached in-process
through httpx's ASGI transport. Time moves only by the FakeClock.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import sqlalchemy as sa
from sqlmodel import select

from models.api import SyncLink
from models.lifecycle import Action, Actor, Role
from models.tables import Case, Category, OutboxItem, OutboxStatus
from services.cases import apply_action
from services.upstream import UpstreamRelay, dead_letters, make_client, retry_dead_letters
from services.upstream_relay import BATCH_PATH, SYNC_PATH
from tests.api.test_sync import FakeUpstream, city, city_view, district_view, drain, outbox, relay_for  # noqa: F401

DISPATCHER = Actor(Role.DISPATCHER)


async def three_cases(api) -> list[int]:
    """Three registered cases, the first dispatched: runs of 3, 2 and 2 events."""
    ids = [(await api.intake("street_a", event=f"c{i}", device=f"cam-{i}", n=i)).json()["case"]["id"]
           for i in range(3)]
    api.clock.advance(minutes=1)
    apply_action(api.ctx, case_id=ids[0], action=Action.DISPATCH, actor=DISPATCHER)
    return ids


def city_relay(api, city, transport: httpx.AsyncBaseTransport | None = None) -> UpstreamRelay:  # noqa: F811
    api.app.settings.instance_id = "huangpu"
    client = make_client(api.app.settings, transport=transport or httpx.ASGITransport(app=city.app.api))
    return UpstreamRelay(api.ctx, client, base_url="http://city.test", api_key=city.district_token)


async def test_each_cases_events_travel_whole_and_in_order_in_one_batch(api) -> None:
    await three_cases(api)
    api.app.settings.upstream_batch_size = 4
    upstream = FakeUpstream(batches=True)
    relay = relay_for(api, upstream)
    relay.batches = None
    assert await relay.run_once() == 7
    assert await relay.run_once() == 0
    assert upstream.paths == [BATCH_PATH, BATCH_PATH]  # 3 events, then 2 + 2: no case split over two
    by_case: dict[str, list[int]] = {}
    for request in upstream.requests:
        cases_here = {e["case"]["number"] for e in upstream.received if e["event_id"] in request}
        for number in cases_here:
            assert number not in by_case  # one case's events all in one request
            by_case[number] = [e["seq"] for e in upstream.received if e["case"]["number"] == number]
    assert sorted(by_case.values()) == [[1, 2], [1, 2], [1, 2, 3]]
    assert {o.status for o in outbox(api)} == {OutboxStatus.SENT}
    with api.ctx.sessions() as s:
        assert all(c.external_id == f"CITY-{c.number}" for c in s.exec(select(Case)))
    await relay.client.aclose()


async def test_an_upstream_without_batches_gets_one_event_per_request(api) -> None:
    await three_cases(api)
    upstream = FakeUpstream(batches=False)
    relay = relay_for(api, upstream)
    relay.batches = None
    await relay.run_once()
    assert upstream.paths[0] == BATCH_PATH and upstream.paths[1:] == [SYNC_PATH] * 7
    assert relay.batches is False
    await api.intake("street_a", event="later", device="cam-9", n=3)
    await relay.run_once()
    assert upstream.paths[8:] == [SYNC_PATH] * 2  # not asked for batches again
    assert {o.status for o in outbox(api)} == {OutboxStatus.SENT}
    seqs: dict[str, list[int]] = {}
    for e in upstream.received:
        seqs.setdefault(e["case"]["number"], []).append(e["seq"])
    assert all(v == list(range(1, len(v) + 1)) for v in seqs.values())
    await relay.client.aclose()


async def test_a_whole_batch_refused_by_5xx_is_retried_from_each_cases_head(api) -> None:
    await three_cases(api)
    upstream = FakeUpstream(batches=True, script=["500"])
    relay = relay_for(api, upstream)
    relay.batches = None
    await relay.run_once()
    rows = outbox(api)
    heads = {r.case_id: r.id for r in reversed(rows)}
    assert {r.id: r.attempts for r in rows} == {r.id: (1 if r.id in heads.values() else 0) for r in rows}
    assert await relay.run_once() == 0  # every case waits out its head's backoff
    await drain(relay, api.clock)
    assert {o.status for o in outbox(api)} == {OutboxStatus.SENT}
    assert relay.stats.by_outcome == {"http_5xx": 3, "sent": 7}
    await relay.client.aclose()


async def test_a_refused_case_does_not_hold_back_the_others(api, city) -> None:  # noqa: F811
    await three_cases(api)
    await api.intake("street_a", event="tree", device="cam-t", category="fallen_tree", n=4)
    with city.app.ctx.sessions() as s:  # the city does not take fallen trees (yet)
        s.execute(sa.update(Category).where(Category.code == "fallen_tree").values(active=False))
        s.commit()
    relay = city_relay(api, city)
    await drain_allowing_dead(relay, api)
    [dead] = dead_letters(api.ctx)
    assert dead.topic == "case.report" and "unknown_category" in dead.last_error
    held = [o for o in outbox(api) if o.case_id == dead.case_id and o.id != dead.id]
    assert [(o.status, o.attempts) for o in held] == [(OutboxStatus.PENDING, 0)]  # its register waits, untried
    others = {n: v for n, v in district_view(api).items() if n in city_view(city)}
    assert len(others) == 3 and others == city_view(city)
    # The city takes them after all: the dead letter is sent again, and its case follows in order.
    with city.app.ctx.sessions() as s:
        s.execute(sa.update(Category).where(Category.code == "fallen_tree").values(active=True))
        s.commit()
    assert retry_dead_letters(api.ctx) == 1
    await drain(relay, api.clock)
    assert city_view(city) == district_view(api)
    await relay.client.aclose()


async def drain_allowing_dead(relay: UpstreamRelay, api) -> None:
    for _ in range(100):
        if not await relay.run_once():
            pending = [o for o in outbox(api) if o.status == OutboxStatus.PENDING]
            due = [o.next_attempt_at for o in pending if o.attempts]
            if not due:
                return
            api.clock.set(max(api.clock.now(), min(due)))


class LosesAnswers(httpx.AsyncBaseTransport):
    """Passes requests to the city, but the first `n` answers never come back (a timeout after the work)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int) -> None:
        self.inner, self.n, self.lost = inner, n, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lost < self.n:
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


async def test_a_batch_whose_answer_was_lost_is_sent_again_and_applied_once(api, city) -> None:  # noqa: F811
    await three_cases(api)
    relay = city_relay(api, city, LosesAnswers(httpx.ASGITransport(app=city.app.api), n=2))
    await relay.run_once()  # the city applied all seven events; the relay heard a timeout
    assert len(city_view(city)) == 3
    assert {o.status for o in outbox(api)} == {OutboxStatus.PENDING}
    await drain(relay, api.clock)  # the next try's answer is lost too; the third is heard
    assert {o.status for o in outbox(api)} == {OutboxStatus.SENT}
    # The first lost answer costs each case's head a try; every event is counted sent exactly once.
    assert relay.stats.by_outcome["timeout"] >= 3 and relay.stats.by_outcome["sent"] == 7
    assert city_view(city) == district_view(api)  # each event applied once: the timelines match
    with city.app.ctx.sessions() as s:
        assert sorted(link.last_seq for link in s.exec(select(SyncLink))) == [2, 2, 3]
    with api.ctx.sessions() as s:
        assert all(c.external_id for c in s.exec(select(Case)))
        assert not s.exec(select(OutboxItem).where(OutboxItem.status == OutboxStatus.DEAD.value)).first()
    await relay.client.aclose()


async def test_the_running_relay_claims_more_while_a_batch_is_in_flight_and_keeps_case_order(api) -> None:
    """A slow batch holds only its own cases: the others go meanwhile; its case's later event waits for it."""
    ids = await three_cases(api)  # outbox: case 0 report, register; case 1 x2; case 2 x2; case 0 dispatch
    with api.ctx.sessions() as s:
        first = s.get(Case, ids[0]).number
    settings = api.app.settings
    settings.upstream_batch_size, settings.upstream_concurrency = 2, 2
    gate, seen, arrived = asyncio.Event(), [], asyncio.Event()

    async def upstream(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        if events[0]["case"]["number"] == first and events[0]["seq"] == 1:
            await gate.wait()  # the first case's batch is slow to answer
        seen.append([(e["case"]["number"], e["seq"]) for e in events])
        arrived.set()
        return httpx.Response(200, json={"results": [
            {"event_id": e["event_id"], "status": "accepted", "service_request_id": f"CITY-{e['case']['number']}"}
            for e in events]})

    relay = UpstreamRelay(api.ctx, make_client(settings, transport=httpx.MockTransport(upstream)),
                          base_url="http://city.test", api_key="og_x_y")
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop, poll_interval=0.01))

    async def received(count: int) -> None:
        while sum(len(batch) for batch in seen) < count:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), timeout=10)

    await received(4)  # cases 1 and 2, in two rounds, while case 0's batch is still unanswered
    await api.intake("street_a", event="late", device="cam-late", n=5)
    await received(6)  # a case reported meanwhile goes too: the relay does not wait for the slow batch
    assert all(number != first for batch in seen for number, _ in batch)
    gate.set()
    await received(9)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert seen[3] == [(first, 1), (first, 2)] and seen[4] == [(first, 3)]  # the dispatch only after its head
    assert {o.status for o in outbox(api)} == {OutboxStatus.SENT}
    await relay.client.aclose()
