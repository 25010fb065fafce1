"""Keyed machine intake written in batches (group commit): each event is answered as if it came alone."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import func, select

from models.api import IdempotencyRecord
from models.tables import Case, CaseSource
from services import idempotency
from services.api_keys import authenticate
from services.case_commands import CaseOutcome
from services.cases import CaseError
from services.intake_batch import KeyedEvent, intake_events_once
from services.intake_machine import MachineReport
from tests.api.conftest import STREET_A, machine_event_log


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes
    media_type: str = "application/json"


def render(outcome: CaseOutcome | CaseError) -> Answer:
    if isinstance(outcome, CaseError):
        return Answer(422, json.dumps({"refused": type(outcome).__name__}).encode())
    return Answer(201 if outcome.outcome == "created" else 200,
                  json.dumps({"outcome": outcome.outcome, "number": outcome.view.case.number}).encode())


def broken_render(outcome: CaseOutcome | CaseError) -> Answer:
    raise RuntimeError("the answer could not be rendered")


def event(api, key: str, event_id: str, *, device: str = "cam-1", category: str = "exposed_garbage", n: int = 0,
          answer=render) -> KeyedEvent:
    lat, lon = api.point(STREET_A, n)
    report = MachineReport(source=CaseSource.CAMERA, event_id=event_id, device_id=device, category_code=category,
                           lat=lat, lon=lon, description="garbage seen by camera")
    principal = authenticate(api.ctx, token=api.tokens["street_a"])
    return KeyedEvent(principal=principal, report=report, key=key, fingerprint=f"fp-{event_id}", answer=answer)


def stored(api, model) -> int:
    with api.ctx.sessions() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def body(answer) -> dict:
    raw = answer.body if isinstance(answer, Answer) else answer.body.encode()
    return json.loads(raw)


async def test_one_batch_answers_each_event_as_if_it_came_alone(api) -> None:
    answers = intake_events_once(api.ctx, [
        event(api, "k-new", "b1"),
        event(api, "k-unknown", "b2", device="cam-2", category="no_such_category"),
        event(api, "k-new", "b1"),  # the same request again, in the same batch
        event(api, "k-broken", "b3", device="cam-3", answer=broken_render),
        event(api, "k-other", "b4", device="cam-4", n=1),
    ])
    assert answers[0].status_code == 201 and body(answers[0])["outcome"] == "created"
    assert answers[1].status_code == 422 and body(answers[1]) == {"refused": "UnknownCategory"}
    assert isinstance(answers[2], idempotency.Replay) and body(answers[2]) == body(answers[0])
    assert isinstance(answers[3], RuntimeError)
    assert answers[4].status_code == 201 and body(answers[4])["number"] != body(answers[0])["number"]
    # Two cases; the refusal's key holds its answer; the event that failed keeps nothing, not even its key.
    assert stored(api, Case) == 2
    with api.ctx.sessions() as s:
        keys = {r.idem_key: r.status_code for r in s.exec(select(IdempotencyRecord))}
    assert keys == {"k-new": 201, "k-unknown": 422, "k-other": 201}
    # The failed event runs afresh when its client retries.
    retried = intake_events_once(api.ctx, [event(api, "k-broken", "b3", device="cam-3")])
    assert retried[0].status_code == 201 and stored(api, Case) == 3


async def test_repeats_of_one_device_fold_within_a_batch(api) -> None:
    first, repeat, elsewhere = intake_events_once(api.ctx, [
        event(api, "f-1", "f1"), event(api, "f-2", "f2"), event(api, "f-3", "f3", device="cam-9", n=1)])
    assert body(first)["outcome"] == "created" and body(elsewhere)["outcome"] == "created"
    assert body(repeat) == {"outcome": "folded", "number": body(first)["number"]}
    with api.ctx.sessions() as s:
        folded = s.exec(select(Case).where(Case.number == body(first)["number"])).one()
    assert folded.report_count == 2 and stored(api, Case) == 2


async def test_a_burst_of_keyed_requests_gets_one_case_each_and_their_own_answers(api) -> None:
    keys = [f"burst-{i}" for i in range(12)]
    burst = [api.intake("street_a", event=f"ev-{i}", device=f"cam-{i}", n=i % 4,
                        headers={"Idempotency-Key": key}) for i, key in enumerate(keys)]
    burst.append(api.intake("street_a", event="ev-bad", device="cam-x", category="no_such_category",
                            headers={"Idempotency-Key": "burst-bad"}))
    answers = await asyncio.gather(*burst)
    assert [r.status_code for r in answers] == [201] * 12 + [422]
    assert answers[-1].json()["code"] == "unknown_category"
    numbers = {r.json()["case"]["number"] for r in answers[:12]}
    assert len(numbers) == 12 and stored(api, Case) == 12
    # Each answer was stored with its own key: asked again, each replays its own.
    again = await asyncio.gather(*(api.intake("street_a", event=f"ev-{i}", device=f"cam-{i}", n=i % 4,
                                              headers={"Idempotency-Key": key}) for i, key in enumerate(keys)))
    assert [r.json() for r in again] == [r.json() for r in answers[:12]]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in again)


async def test_a_batch_knows_the_claims_and_open_cases_of_earlier_batches_and_of_its_own(api) -> None:
    (first,) = intake_events_once(api.ctx, [event(api, "p-1", "p1")])
    api.clock.advance(seconds=30)
    again, repeat, new, new_again = intake_events_once(api.ctx, [
        event(api, "p-2", "p1"),  # the same event under another key: the claim of the last batch answers
        event(api, "p-3", "p2"),  # the same camera again, within the fold window: folds into the last batch's case
        event(api, "p-4", "p3", device="cam-7", n=2),
        event(api, "p-5", "p3", device="cam-7", n=2),  # the same event twice within this batch
    ])
    number = body(first)["number"]
    assert body(again) == {"outcome": "duplicate", "number": number}
    assert body(repeat) == {"outcome": "folded", "number": number}
    assert body(new)["outcome"] == "created" and body(new_again) == {"outcome": "duplicate",
                                                                      "number": body(new)["number"]}
    with api.ctx.sessions() as s:
        folded = s.exec(select(Case).where(Case.number == number)).one()
    assert folded.report_count == 2 and stored(api, Case) == 2


async def test_each_event_of_a_batch_is_logged_under_its_own_request_id(api) -> None:
    with machine_event_log() as seen:
        answers = await asyncio.gather(*(
            api.intake("street_a", event=f"log-{i}", device=f"cam-{i}", n=i % 4,
                       headers={"Idempotency-Key": f"log-{i}", "X-Request-ID": f"req-log-{i:04d}"})
            for i in range(10)))
    assert [r.status_code for r in answers] == [201] * 10
    assert sorted(seen) == sorted((r.json()["case"]["number"], r.headers["X-Request-ID"]) for r in answers)
    assert {r.headers["X-Request-ID"] for r in answers} == {f"req-log-{i:04d}" for i in range(10)}


async def test_refusals_mixed_into_a_batch_each_get_their_own_answer(api) -> None:
    far = event(api, "m-far", "m3", device="cam-3")
    far = KeyedEvent(principal=far.principal, key=far.key, fingerprint=far.fingerprint, answer=far.answer,
                     report=MachineReport(source=CaseSource.CAMERA, event_id="m3", device_id="cam-3",
                                          category_code="exposed_garbage", lat=0.5, lon=0.5))
    lat, lon = api.point("SH-HP-02")
    other_street = KeyedEvent(principal=far.principal, key="m-other", fingerprint="fp-m5", answer=render,
                              report=MachineReport(source=CaseSource.CAMERA, event_id="m5", device_id="cam-5",
                                                   category_code="exposed_garbage", lat=lat, lon=lon))
    answers = intake_events_once(api.ctx, [
        event(api, "m-1", "m1"), event(api, "m-unknown", "m2", device="cam-2", category="no_such_category"),
        far, event(api, "m-4", "m4", device="cam-4", n=1), other_street, event(api, "m-6", "m6", device="cam-6", n=2)])
    assert [a.status_code for a in answers] == [201, 422, 422, 201, 422, 201]
    assert [body(answers[i]) for i in (1, 2, 4)] == [
        {"refused": "UnknownCategory"}, {"refused": "OutsideGrid"}, {"refused": "OutsideArea"}]
    assert stored(api, Case) == 3
    replayed = intake_events_once(api.ctx, [event(api, "m-unknown", "m2", device="cam-2", category="no_such_category")])
    assert isinstance(replayed[0], idempotency.Replay) and replayed[0].status_code == 422


async def test_a_batch_takes_its_case_numbers_at_once_and_leaves_no_gap(api) -> None:
    # Five events, two of them repeats that fold: the batch reserved five numbers and used three.
    answers = intake_events_once(api.ctx, [
        event(api, "n-1", "n1"), event(api, "n-2", "n2"), event(api, "n-3", "n3", device="cam-5", n=1),
        event(api, "n-4", "n4", device="cam-5", n=1), event(api, "n-5", "n5", device="cam-6", n=2)])
    assert [body(a)["outcome"] for a in answers] == ["created", "folded", "created", "folded", "created"]
    (later,) = intake_events_once(api.ctx, [event(api, "n-6", "n6", device="cam-8", n=3)])
    numbers = [body(a)["number"] for a in (answers[0], answers[2], answers[4], later)]
    assert [int(number.rsplit("-", 1)[1]) for number in numbers] == [1, 2, 3, 4]
    with api.ctx.sessions() as s:
        assert sorted(s.exec(select(Case.number)).all()) == sorted(numbers)


async def test_a_batch_finds_its_keys_claims_and_devices_through_their_indexes(api) -> None:
    """A batch's reads of keys, claims and open cases by device name their indexes' columns: read by the
    key, ref or device alone, each scanned its whole table, and intake slowed with every case ever taken."""
    seen: list[tuple[str, object]] = []
    tables = {"idempotency_record": "FROM idempotency_record WHERE", "intake_claim": "FROM intake_claim WHERE",
              "machine_case": "FROM machine_case JOIN"}

    def keep(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        flat = " ".join(statement.split())
        if flat.upper().startswith("SELECT") and any(m in flat for m in tables.values()):
            seen.append((statement, params))

    sa.event.listen(api.app.engine, "before_cursor_execute", keep)
    try:
        answers = await asyncio.gather(*(api.intake("street_a", event=f"ix-{i}", device=f"cam-{i}", n=i,
                                                    headers={"Idempotency-Key": f"ix-{i}"}) for i in range(3)))
    finally:
        sa.event.remove(api.app.engine, "before_cursor_execute", keep)
    assert [r.status_code for r in answers] == [201] * 3
    postgres = api.app.engine.dialect.name == "postgresql"
    for table, marker in tables.items():
        statement, params = next(((s, p) for s, p in seen if marker in " ".join(s.split())), (None, None))
        assert statement is not None, (table, [s[:120] for s, _ in seen])
        with api.app.engine.connect() as conn:
            if postgres:
                conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: make the planner say what it can use
                plan = " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params))
                leading = {"idempotency_record": "api_key_id", "intake_claim": "source", "machine_case": "api_key_id"}
                assert f" on {table} " in plan and re.search(rf"Index Cond: \(+{leading[table]} ", plan), plan
            else:
                plan = " ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
                assert f"SCAN {table}" not in plan and f"SEARCH {table} USING" in plan, plan
