"""Idempotency-Key on unsafe requests (IETF draft): missing, replayed, conflicting, concurrent, expired."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import func, select

from models.api import IdempotencyRecord
from models.tables import Case, CaseEvent
from services import idempotency
from services.idempotency import purge_expired
from tests.api.conftest import STREET_A
from tests.worker_support import add_worker


def cases_stored(api) -> int:
    with api.ctx.sessions() as s:
        return s.exec(select(func.count()).select_from(Case)).one()


async def test_without_a_key_each_distinct_event_opens_its_case(api) -> None:
    a = await api.intake("street_a", event="n1")
    b = await api.intake("street_a", event="n2", device="cam-9")
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotency-Expires" not in a.headers
    assert cases_stored(api) == 2


async def test_a_replay_returns_the_original_response(api) -> None:
    key = {"Idempotency-Key": "req-001"}
    first = await api.intake("street_a", event="r1", headers=key)
    api.clock.advance(minutes=5)
    replay = await api.intake("street_a", event="r1", headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()  # the original answer, byte for byte, not a re-run
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Idempotency-Expires"] == str(24 * 3600)
    assert cases_stored(api) == 1


async def test_the_same_key_with_another_body_is_422(api) -> None:
    key = {"Idempotency-Key": "req-002"}
    await api.intake("street_a", event="d1", headers=key)
    other = await api.intake("street_a", event="d2", headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert cases_stored(api) == 1


async def test_a_key_still_in_flight_is_409(api) -> None:
    body_key = "req-003"
    lat, lon = api.point(STREET_A)
    body = {"source": "camera", "source_event_id": "f1", "category_code": "exposed_garbage", "lat": lat, "lon": lon}
    # The first request has begun (its record is in flight) when the second arrives.
    import json

    fp = idempotency.fingerprint("POST", "/api/v1/cases", json.dumps(body, separators=(",", ":")).encode())
    started = idempotency.begin(api.ctx, api_key_id=_key_id(api, "street_a"), key=body_key, fingerprint=fp)
    assert isinstance(started, idempotency.Started)
    r = await api.client.post("/api/v1/cases", content=json.dumps(body, separators=(",", ":")),
                              headers={**api.auth("street_a"), "Idempotency-Key": body_key,
                                       "Content-Type": "application/json"})
    assert r.status_code == 409 and r.json()["code"] == "idempotency_key_in_flight"
    assert cases_stored(api) == 0
    # A request that died in flight stops blocking its key after the lock time.
    api.clock.advance(seconds=61)
    r = await api.client.post("/api/v1/cases", content=json.dumps(body, separators=(",", ":")),
                              headers={**api.auth("street_a"), "Idempotency-Key": body_key,
                                       "Content-Type": "application/json"})
    assert r.status_code == 201 and cases_stored(api) == 1


def _key_id(api, name: str) -> int:
    from services.api_keys import authenticate

    return authenticate(api.ctx, token=api.tokens[name]).id


async def test_concurrent_requests_with_one_key_run_once(api) -> None:
    key = {"Idempotency-Key": "req-004"}
    results = await asyncio.gather(*(api.intake("street_a", event="cc", headers=key) for _ in range(8)))
    codes = [r.status_code for r in results]
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}
    created = {r.json()["case"]["id"] for r in results if r.status_code == 201}
    assert len(created) == 1 and cases_stored(api) == 1


async def test_keys_are_per_api_key_and_expire(api) -> None:
    key = {"Idempotency-Key": "shared-name"}
    api.key("street_a2", ["intake", "read"], STREET_A)
    a = await api.intake("street_a", event="k1", headers=key)
    b = await api.intake("street_a2", event="k2", device="cam-2", headers=key)  # another client, same key text
    assert (a.status_code, b.status_code) == (201, 201)
    api.clock.advance(hours=24, seconds=1)
    assert purge_expired(api.ctx) == 2
    again = await api.intake("street_a", event="k3", device="cam-3", headers=key)  # a new request now
    assert again.status_code == 201 and again.json()["case"]["id"] not in {a.json()["case"]["id"]}


async def test_a_refusal_is_replayed_too_and_a_bad_key_is_400(api) -> None:
    key = {"Idempotency-Key": "req-005"}
    first = await api.intake("street_a", event="x1", category="no_such_thing", headers=key)
    replay = await api.intake("street_a", event="x1", category="no_such_thing", headers=key)
    assert first.status_code == replay.status_code == 422 and replay.headers["Idempotent-Replayed"] == "true"
    bad = await api.intake("street_a", event="x2", headers={"Idempotency-Key": "x" * 300})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_idempotency_key"


async def test_an_action_with_a_key_is_applied_once(api) -> None:
    case_id = (await api.intake("street_a", event="a1")).json()["case"]["id"]  # nobody on duty: it waits
    add_worker(api.ctx.sessions, api.clock.now(), 5501, area_code=STREET_A)  # now somebody can be offered it
    key = {**api.auth("street_a"), "Idempotency-Key": "act-1"}
    body = {"action": "dispatch"}
    first = await api.client.post(f"/api/v1/cases/{case_id}/actions", json=body, headers=key)
    replay = await api.client.post(f"/api/v1/cases/{case_id}/actions", json=body, headers=key)
    assert first.status_code == replay.status_code == 200 and replay.json() == first.json()
    with api.ctx.sessions() as s:
        n = s.exec(select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id,
                                                                     CaseEvent.action == "dispatch")).one()
        records = s.exec(select(func.count()).select_from(IdempotencyRecord)).one()
    assert n == 1 and records == 1


def _break_dispatch_queue(api, broken: bool) -> None:
    """A store fault in the registering transaction, after the case row: queuing it for dispatch fails."""
    with api.app.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS queue_fault")
            if broken:
                conn.exec_driver_sql("CREATE TRIGGER queue_fault AFTER INSERT ON pending_dispatch "
                                     "BEGIN INSERT INTO no_such_table VALUES (1); END")
            return
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS queue_fault ON pending_dispatch")
        if broken:
            conn.exec_driver_sql("CREATE OR REPLACE FUNCTION queue_fault() RETURNS trigger LANGUAGE plpgsql AS "
                                 "$$ BEGIN RAISE EXCEPTION 'store fault'; END $$")
            conn.exec_driver_sql("CREATE TRIGGER queue_fault AFTER INSERT ON pending_dispatch "
                                 "FOR EACH ROW EXECUTE FUNCTION queue_fault()")


async def test_a_store_fault_mid_intake_leaves_neither_case_nor_key_and_the_retry_opens_it_once(api) -> None:
    """The key's record, the case and the stored answer commit together: a fault in between keeps none of them,
    so the client's retry with the same key runs afresh instead of waiting out a lock or replaying nothing."""
    key = {"Idempotency-Key": "req-fault"}
    _break_dispatch_queue(api, True)
    with pytest.raises(DBAPIError):
        await api.intake("street_a", event="fault-1", headers=key)
    with api.ctx.sessions() as s:
        assert s.exec(select(func.count()).select_from(IdempotencyRecord)).one() == 0
    assert cases_stored(api) == 0
    _break_dispatch_queue(api, False)
    retry = await api.intake("street_a", event="fault-1", headers=key)
    replay = await api.intake("street_a", event="fault-1", headers=key)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert replay.json() == retry.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert cases_stored(api) == 1
