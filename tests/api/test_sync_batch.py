"""POST /api/v1/sync/events/batch: a downstream OneGrid's events in ordered batches, a result per event.

The receiving OneGrid is the `api` fixture (SQLite and PostgreSQL); events are written here as a
district's relay would send them. What is checked is what the sender and the city's people see:
the answer per event, and the mirrored case in the store (status, audit timeline, counters).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import func, select

from models.api import SyncLink
from models.tables import Case, CaseEvent, OutboxItem
from tests.api.conftest import STREET_A, STREET_B

BATCH = "/api/v1/sync/events/batch"
SINGLE = "/api/v1/sync/events"


class District:
    """Writes the events a district's relay sends for its cases, numbering each case's events (seq)."""

    def __init__(self, api, origin: str = "huangpu") -> None:
        self.api, self.origin = api, origin
        self.seq: dict[str, int] = {}
        self.at = api.clock.now() - timedelta(hours=1)

    def _event(self, number: str, topic: str, payload: dict[str, Any], role: str, **case: Any) -> dict[str, Any]:
        self.seq[number] = self.seq.get(number, 0) + 1
        self.at += timedelta(seconds=5)
        return {"event_id": f"{self.origin}:{number}:{self.seq[number]}", "origin": self.origin, "topic": topic,
                "seq": self.seq[number], "actor_role": role, "payload": {"number": number, **payload},
                "case": {"number": number, **case}}

    def report(self, number: str, *, street: str = STREET_A, n: int = 0, category: str = "exposed_garbage",
               **case: Any) -> dict[str, Any]:
        lat, lon = self.api.point(street, n)
        snapshot = {"source": "camera", "category_code": category, "lat": lat, "lon": lon, "description": "bags",
                    "media_urls": [], "report_count": 1, **case}
        at = (self.at + timedelta(seconds=5)).isoformat()
        snapshot.setdefault("created_at", at)
        return self._event(number, "case.report", {"action": "report", "from": None, "to": "reported", "at": at},
                           "system", **snapshot)

    def act(self, number: str, action: str, to: str, role: str = "system", note: str | None = None) -> dict[str, Any]:
        at = (self.at + timedelta(seconds=5)).isoformat()
        return self._event(number, f"case.{action}", {"action": action, "to": to, "at": at, "note": note}, role)

    def repeated(self, number: str, count: int) -> dict[str, Any]:
        return self._event(number, "case.repeated", {"report_count": count, "media_urls": [f"https://cam/{count}"]},
                           "system")


async def send(api, events: list[Any], key: str = "street_a", **headers: str):  # noqa: ANN201
    return await api.client.post(BATCH, json={"events": events}, headers={**api.auth(key), **headers})


def mirror(api, origin: str, number: str) -> dict[str, Any] | None:
    """The city's mirror of a district case as its people see it: status, timeline, counters."""
    with api.ctx.sessions() as s:
        link = s.exec(select(SyncLink).where(SyncLink.origin == origin, SyncLink.origin_number == number)).first()
        if link is None:
            return None
        case = s.get(Case, link.case_id)
        timeline = [(e.action, e.actor_role, e.to_status, e.note) for e in
                    s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))]
        return {"status": case.status, "timeline": timeline, "report_count": case.report_count,
                "media_urls": case.media_urls, "version": case.version, "closed_at": case.closed_at,
                "updated_at": case.updated_at, "grid_code": case.grid_code, "last_seq": link.last_seq,
                "id": case.id, "number": case.number}


def rows(api) -> tuple[int, int, int, int]:
    with api.ctx.sessions() as s:
        return tuple(s.exec(select(func.count()).select_from(t)).one() for t in (Case, CaseEvent, OutboxItem, SyncLink))


def whole_life(d: District, number: str) -> list[dict[str, Any]]:
    """A case's events from report to a second closure, with a rework, repeats and notes on the way."""
    return [d.report(number), d.act(number, "register", "registered"), d.repeated(number, 2),
            d.act(number, "dispatch", "dispatched", "dispatcher"), d.act(number, "accept", "in_progress", "worker"),
            d.act(number, "complete", "awaiting_verification", "worker"),
            d.act(number, "approve", "closed", "supervisor"),
            d.act(number, "reopen", "rework", "supervisor", note="still there"), d.repeated(number, 3),
            d.act(number, "complete", "awaiting_verification", "worker"),
            d.act(number, "approve", "closed", "supervisor")]


async def test_a_batch_mirrors_each_case_as_the_single_event_path_does(api) -> None:
    # The same lives, one event per request from one district and interleaved in one batch from another.
    one, two = District(api, "jingan"), District(api, "huangpu")
    for event in whole_life(one, "D-1") + whole_life(one, "D-2"):
        r = await api.client.post(SINGLE, json=event, headers=api.auth("street_a"))
        assert r.status_code == 200, r.text
    a, b = whole_life(two, "D-1"), whole_life(two, "D-2")
    batch = [e for pair in zip(a, b, strict=True) for e in pair]
    r = await send(api, batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (len(batch), 0, 0)
    assert [x["event_id"] for x in body["results"]] == [e["event_id"] for e in batch]
    for number in ("D-1", "D-2"):
        single, batched = mirror(api, "jingan", number), mirror(api, "huangpu", number)
        assert single["status"] == batched["status"] == "closed"
        for field in ("timeline", "report_count", "media_urls", "version", "closed_at", "updated_at", "grid_code",
                      "last_seq"):
            assert single[field] == batched[field], field
        mine = [x for x in body["results"] if x["event_id"].startswith(f"huangpu:{number}:")]
        assert {(x["service_request_id"], x["number"]) for x in mine} == {(str(batched["id"]), batched["number"])}
        assert [x["case_status"] for x in mine][:4] == ["reported", "registered", "registered", "dispatched"]
    assert mirror(api, "huangpu", "D-1")["number"] != mirror(api, "huangpu", "D-2")["number"]


async def test_a_retried_batch_gives_the_same_answers_and_applies_nothing_twice(api) -> None:
    d = District(api)
    first = [d.report("R-1"), d.act("R-1", "register", "registered"), d.report("R-2", n=1)]
    answer = (await send(api, first)).json()
    before = rows(api)
    again = (await send(api, first)).json()
    assert rows(api) == before
    assert [x["status"] for x in again["results"]] == ["duplicate"] * 3
    assert [(x["event_id"], x["service_request_id"], x["number"]) for x in again["results"]] == \
           [(x["event_id"], x["service_request_id"], x["number"]) for x in answer["results"]]
    # A retry that overlaps what was applied and carries one more event applies only that one.
    more = first + [d.act("R-2", "register", "registered")]
    answer = (await send(api, more)).json()
    assert [x["status"] for x in answer["results"]] == ["duplicate"] * 3 + ["accepted"]
    assert mirror(api, "huangpu", "R-2")["status"] == "registered"
    assert rows(api)[1] == before[1] + 1  # one audit event more
    # With an Idempotency-Key, the very answer comes back.
    key = {"Idempotency-Key": "batch-7"}
    extra = [d.report("R-3", n=2)]
    r1, r2 = await send(api, extra, **key), await send(api, extra, **key)
    assert r1.json() == r2.json() and r1.json()["accepted"] == 1
    assert r2.headers.get("Idempotent-Replayed") == "true"


async def test_a_rejected_event_blocks_only_its_own_case(api) -> None:
    d = District(api)
    batch = [
        d.report("P-1", category="no_such_thing"), d.act("P-1", "register", "registered"),  # 0, 1
        d.report("P-2"), d.act("P-2", "register", "registered"),  # 2, 3: fine
        d.act("P-3", "register", "registered"),  # 4: seq 1 is not a report
        d.report("P-4", street=STREET_B),  # 5: outside the key's street
        d.report("P-5", n=1), d.act("P-5", "approve", "closed", "supervisor"),  # 6, 7: not from reported
        d.act("P-5", "register", "registered"),  # 8: behind the refused approve
        {"origin": "huangpu", "topic": "case.report", "case": {"number": "P-6"}},  # 9: no seq
        d.report("P-7", lat="north"),  # 10: no usable point
        d.report("P-8", n=2),  # 11: fine
    ]
    d.act("P-9", "register", "registered")  # P-9's seq 1 is never sent: its seq 2 comes first
    batch.append(d.act("P-9", "register", "registered"))  # 12
    body = (await send(api, batch)).json()
    got = [(x["status"], x.get("reason"), x.get("retryable")) for x in body["results"]]
    assert got == [
        ("rejected", "unknown_category", False), ("rejected", "blocked", True),
        ("accepted", None, None), ("accepted", None, None),
        ("rejected", "out_of_order", True),
        ("rejected", "not_visible", False),
        ("accepted", None, None), ("rejected", "diverged", True), ("rejected", "blocked", True),
        ("rejected", "malformed_event", False),
        ("rejected", "malformed_event", False),
        ("accepted", None, None),
        ("rejected", "out_of_order", True),
    ]
    assert (body["accepted"], body["rejected"]) == (4, 9)
    assert "no_such_thing" in body["results"][0]["message"]
    assert mirror(api, "huangpu", "P-2")["status"] == "registered"
    assert mirror(api, "huangpu", "P-5")["status"] == "reported"  # its report stands; the rest waits
    assert mirror(api, "huangpu", "P-8")["status"] == "reported"
    for number in ("P-1", "P-3", "P-4", "P-6", "P-7", "P-9"):
        assert mirror(api, "huangpu", number) is None


async def test_the_key_decides_who_may_send_and_where(api) -> None:
    d = District(api)
    batch = [d.report("K-1")]
    assert (await api.client.post(BATCH, json={"events": batch})).status_code == 401
    api.key("reader", ["read"])
    assert (await send(api, batch, key="reader")).status_code == 403
    body = (await send(api, batch, key="street_b")).json()  # Street B's key: a Street A case is not its own
    assert body["results"][0]["reason"] == "not_visible"
    assert mirror(api, "huangpu", "K-1") is None
    assert (await send(api, batch, key="street_a")).json()["accepted"] == 1


async def test_a_malformed_batch_is_refused_whole_with_a_clear_answer(api) -> None:
    d = District(api)
    cases = [
        ({"events": []}, "events"),
        ({"events": [d.report("M-1"), 7]}, "events.1"),
        ({"event": d.report("M-2")}, "events"),
        ([d.report("M-3")], ""),
        ({"events": [d.report(f"M-{i}") for i in range(1001)]}, "events"),
    ]
    for body, where in cases:
        r = await api.client.post(BATCH, json=body, headers=api.auth("street_a"))
        assert r.status_code == 422, body
        answer = r.json()
        assert answer["code"] == "invalid"
        assert any(where in ".".join(str(p) for p in item.get("loc", [])) for item in answer["detail"]), answer
    assert rows(api)[0] == 0

