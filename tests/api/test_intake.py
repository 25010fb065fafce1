"""Machine intake through POST /api/v1/cases: new cases, repeats, folding, clears (自动结案)."""

from __future__ import annotations

import asyncio

from sqlmodel import func, select

from models.api import MachineCase
from models.lifecycle import Action, Actor, Role, Status
from models.tables import Case, CaseEvent, CaseSource, Notification, NotificationStatus, OutboxItem
from models.work import CaseTask, Completion, CompletionStatus, OfferStatus, TaskStatus, WorkOffer
from services import work
from services.cases import apply_action, report_case
from services.intake import apply_pending_clears
from tests.api.conftest import STREET_A, STREET_B
from tests.worker_support import add_supervisor, add_worker, offset, picture, queued


def count(api, model, *where) -> int:
    with api.ctx.sessions() as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def mark_sent(api, notification_id: int, telegram_message_id: int) -> None:
    """What the sender does once Telegram took the message (no sender runs in API tests)."""
    with api.ctx.sessions() as s:
        row = s.get(Notification, notification_id)
        row.status, row.telegram_message_id = NotificationStatus.SENT, telegram_message_id
        s.add(row)
        s.commit()


def delivered_offer(api, case_id: int, worker_id: int, *, telegram_message_id: int) -> int:
    """The worker's open offer for the case, its message marked delivered; returns the offer id."""
    with api.ctx.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id, WorkOffer.worker_id == worker_id,
                                               WorkOffer.status == OfferStatus.OPEN)).one()
    mark_sent(api, offer.message_notification_id, telegram_message_id)
    return offer.id


def deliver_last(api, chat_id: int, *, telegram_message_id: int) -> int:
    mark_sent(api, queued(api.ctx.sessions, chat_id, "sendMessage")[-1].id, telegram_message_id)
    return telegram_message_id


def accept(api, case_id: int, worker_id: int) -> int:
    with api.ctx.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id, WorkOffer.worker_id == worker_id)).one()
    return work.accept_offer(api.ctx, offer_id=offer.id, worker_id=worker_id).task_id


def accept_and_complete(api, case_id: int, worker_id: int) -> int:
    """The worker accepts, sends a proof photo and a live location 10 m away: the case awaits verification."""
    task_id = accept(api, case_id, worker_id)
    draft = work.start_completion(api.ctx, task_id=task_id, worker_id=worker_id)
    work.add_proof_photo(api.ctx, completion_id=draft.completion_id, worker_id=worker_id, data=picture(case_id),
                         file_unique_id=f"proof-{case_id}")
    api.clock.advance(minutes=7)
    with api.ctx.sessions() as s:
        case = s.get(Case, case_id)
    lat, lon = offset(case.lat, case.lon, north_m=10)
    work.submit_location(api.ctx, completion_id=draft.completion_id, worker_id=worker_id,
                         fix=work.LocationFix(lat=lat, lon=lon, sent_at=api.clock.now(), accuracy_m=15.0,
                                              live_period=900))
    with api.ctx.sessions() as s:
        assert s.get(Case, case_id).status == Status.AWAITING_VERIFICATION
    api.clock.advance(minutes=1)
    return task_id


async def test_a_camera_event_opens_a_registered_case_with_its_media(api) -> None:
    r = await api.intake("street_a", media_urls=["https://cam.example/1.jpg"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["outcome"] == "created"
    case = body["case"]
    assert case["status"] == "registered" and case["source"] == "camera"
    assert case["media_urls"] == ["https://cam.example/1.jpg"]
    assert case["grid_code"].startswith(STREET_A)
    with api.ctx.sessions() as s:
        row = s.get(Case, case["id"])
        events = s.exec(select(CaseEvent.action).where(CaseEvent.case_id == row.id).order_by(CaseEvent.id)).all()
        topics = s.exec(select(OutboxItem.topic).where(OutboxItem.case_id == row.id).order_by(OutboxItem.id)).all()
    assert row.source_event_id == "cam-1/e1" and row.reporter_id is None
    assert events[:2] == ["report", "register"] and topics[:2] == ["case.report", "case.register"]


async def test_the_same_event_twice_opens_one_case(api) -> None:
    first = await api.intake("street_a", event="same")
    again = await api.intake("street_a", event="same")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert again.json()["case"]["id"] == first.json()["case"]["id"]
    assert count(api, Case) == 1


async def test_repeats_of_one_camera_fold_into_the_open_case_within_the_window(api) -> None:
    first = await api.intake("street_a", event="m1", media_urls=["https://cam.example/1.jpg"])
    api.clock.advance(minutes=1)
    second = await api.intake("street_a", event="m2", media_urls=["https://cam.example/2.jpg"])
    api.clock.advance(minutes=59)  # the window slides with each repeat
    third = await api.intake("street_a", event="m3")
    assert [second.json()["outcome"], third.json()["outcome"]] == ["folded", "folded"]
    case = third.json()["case"]
    assert case["id"] == first.json()["case"]["id"] and case["report_count"] == 3
    assert case["media_urls"] == ["https://cam.example/1.jpg", "https://cam.example/2.jpg"]
    assert count(api, Case) == 1
    with api.ctx.sessions() as s:
        assert s.get(MachineCase, case["id"]).events == 3
    assert count(api, OutboxItem, OutboxItem.topic == "case.repeated") == 2


async def test_no_fold_after_the_window_or_from_another_device_place_or_category(api) -> None:
    first = (await api.intake("street_a", event="w1")).json()["case"]["id"]
    other_device = await api.intake("street_a", event="w2", device="cam-2")
    other_place = await api.intake("street_a", event="w3", n=1)
    other_category = await api.intake("street_a", event="w4", category="illegal_posting")
    api.clock.advance(minutes=61)
    late = await api.intake("street_a", event="w5")
    outcomes = [r.json()["outcome"] for r in (other_device, other_place, other_category, late)]
    assert outcomes == ["created"] * 4
    assert first not in {r.json()["case"]["id"] for r in (other_device, other_place, other_category, late)}
    assert count(api, Case) == 5


async def test_no_fold_into_a_closed_case(api) -> None:
    case_id = (await api.intake("street_a", event="c1")).json()["case"]["id"]
    apply_action(api.ctx, case_id=case_id, action=Action.CANCEL, actor=Actor(Role.SUPERVISOR, None), note="dup")
    again = await api.intake("street_a", event="c2")
    assert again.json()["outcome"] == "created" and again.json()["case"]["id"] != case_id


async def test_bad_input_is_refused_with_a_clear_reason_and_nothing_stored(api) -> None:
    lat, lon = api.point(STREET_A)
    cases = [
        ({"category_code": "no_such_category"}, 422, "unknown_category"),
        ({"lat": 0.0, "lon": 0.0}, 422, "outside_grid"),
        ({"status": "closed"}, 422, "invalid"),  # clients can never write a status
        ({"grid_code": "SH-HP-01-001"}, 422, "invalid"),
        ({"assignee_id": 3}, 422, "invalid"),
        ({"id": 99}, 422, "invalid"),
        ({"lat": 91}, 422, "invalid"),
        ({"source": "resident"}, 422, "invalid"),
    ]
    for override, status, code in cases:
        body = {"source": "camera", "source_event_id": "x", "category_code": "exposed_garbage", "lat": lat,
                "lon": lon, **override}
        r = await api.client.post("/api/v1/cases", json=body, headers=api.auth("street_a"))
        assert (r.status_code, r.json()["code"]) == (status, code), (override, r.text)
    assert count(api, Case) == 0


async def test_a_point_outside_the_keys_area_is_refused(api) -> None:
    r = await api.intake("street_a", street=STREET_B)
    assert r.status_code == 422 and r.json()["code"] == "outside_area"
    assert count(api, Case) == 0


async def test_intake_needs_the_intake_scope(api) -> None:
    api.key("reader", ["read"])
    r = await api.intake("reader")
    assert r.status_code == 403
    r = await api.client.post("/api/v1/cases", json={})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


async def test_clear_verifies_a_handled_case_per_the_default_rule(api) -> None:
    case_id = (await api.intake("street_a", event="v1")).json()["case"]["id"]
    pending = await api.client.post(f"/api/v1/cases/{case_id}/clear", headers=api.auth("street_a"))
    assert pending.status_code == 200 and pending.json()["outcome"] == "pending"
    assert pending.json()["case"]["status"] == "registered"  # nobody handled it yet: people decide
    # A worker handles it; the clear that waited now verifies the fix.
    for action, actor in ((Action.DISPATCH, Actor(Role.DISPATCHER)), (Action.ACCEPT, Actor(Role.SUPERVISOR)),
                          (Action.COMPLETE, Actor(Role.SUPERVISOR))):
        api.clock.advance(minutes=1)
        apply_action(api.ctx, case_id=case_id, action=action, actor=actor)
    assert apply_pending_clears(api.ctx) == 1
    with api.ctx.sessions() as s:
        case = s.get(Case, case_id)
        last = s.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id.desc())).first()
    assert case.status == Status.CLOSED
    assert (last.action, last.actor_role, last.note) == ("approve", "system", "Cleared at source")


async def test_clear_closes_an_unstarted_case_when_the_category_says_close(api) -> None:
    # 自动结案: nobody had started, the source says the problem is gone, the category says close.
    r = await api.client.put("/api/v1/categories/exposed_garbage/intake-rule", headers=api.auth("admin"),
                             json={"on_clear": "close", "fold_window_s": 600})
    assert r.status_code == 200
    worker = add_worker(api.ctx.sessions, api.clock.now(), 8101, area_code=STREET_A)
    case_id = (await api.intake("street_a", event="k1")).json()["case"]["id"]
    offer = delivered_offer(api, case_id, worker, telegram_message_id=501)
    r = await api.client.post(f"/api/v1/cases/{case_id}/clear", headers=api.auth("street_a"),
                              json={"note": "bin emptied"})
    assert r.json()["outcome"] == "closed" and r.json()["case"]["status"] == "closed"
    timeline = (await api.client.get(f"/api/v1/cases/{case_id}", headers=api.auth("street_a"))).json()["timeline"]
    assert timeline[-1]["note"] == "Cleared at source: bin emptied" and timeline[-1]["actor_role"] == "system"
    with api.ctx.sessions() as s:
        assert s.get(WorkOffer, offer).status == OfferStatus.WITHDRAWN
        assert {t.status for t in s.exec(select(CaseTask).where(CaseTask.case_id == case_id))} == {TaskStatus.CANCELLED}
        assert s.exec(select(OutboxItem.topic).where(OutboxItem.case_id == case_id)
                      .order_by(OutboxItem.id.desc())).first() == "case.clear_at_source"
    # The work order the worker saw is edited to say it is no longer open (its buttons go).
    [edit] = queued(api.ctx.sessions, 8101, "editMessageText")
    assert edit.payload["message_id"] == 501 and "no longer open" in edit.payload["text"]
    again = await api.client.post(f"/api/v1/cases/{case_id}/clear", headers=api.auth("street_a"))
    assert again.json()["outcome"] == "already_closed"


async def test_clear_of_a_case_awaiting_verification_closes_it_and_settles_the_work(api) -> None:
    worker = add_worker(api.ctx.sessions, api.clock.now(), 8201, area_code=STREET_A)
    add_supervisor(api.ctx.sessions, api.clock.now(), 8202, area_code=STREET_A)
    case_id = (await api.intake("street_a", event="av1")).json()["case"]["id"]
    task_id = accept_and_complete(api, case_id, worker)
    card = deliver_last(api, 8202, telegram_message_id=601)  # the supervisor's proof card was delivered
    r = await api.client.post(f"/api/v1/cases/{case_id}/clear", headers=api.auth("street_a"),
                              json={"note": "camera 12"})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "verified" and r.json()["case"]["status"] == "closed"
    with api.ctx.sessions() as s:
        case = s.get(Case, case_id)
        assert case.status == Status.CLOSED and case.closed_at == api.clock.now()
        assert s.get(CaseTask, task_id).status == TaskStatus.DONE
        assert s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id,
                                              WorkOffer.status == OfferStatus.OPEN)).first() is None
        assert [c.status for c in s.exec(select(Completion).where(Completion.case_id == case_id))] == [
            CompletionStatus.APPROVED]
        last = s.exec(select(OutboxItem).where(OutboxItem.case_id == case_id).order_by(OutboxItem.id.desc())).first()
    assert last.topic == "case.approve" and (last.payload["from"], last.payload["to"]) == (
        "awaiting_verification", "closed")
    assert last.payload["note"] == "Cleared at source: camera 12"
    # The worker is told; the supervisor's card loses its buttons and says why.
    assert "closed: the source reports the problem gone" in queued(api.ctx.sessions, 8201)[-1].payload["text"]
    [edit] = queued(api.ctx.sessions, 8202, "editMessageText")
    assert edit.payload["message_id"] == card and "the source reports the problem gone" in edit.payload["text"]


async def test_a_clear_while_a_worker_is_on_it_tells_them_once_and_waits(api) -> None:
    worker = add_worker(api.ctx.sessions, api.clock.now(), 8301, area_code=STREET_A)
    case_id = (await api.intake("street_a", event="w1")).json()["case"]["id"]
    accept(api, case_id, worker)
    before = len(queued(api.ctx.sessions, 8301))
    r = await api.client.post(f"/api/v1/cases/{case_id}/clear", headers=api.auth("street_a"))
    assert r.json()["outcome"] == "pending" and r.json()["case"]["status"] == "in_progress"
    told = queued(api.ctx.sessions, 8301)[before:]
    assert len(told) == 1 and "reports the problem gone" in told[0].payload["text"]
    assert apply_pending_clears(api.ctx) == 0  # still in the worker's hands: nothing happens, nobody is told
    assert len(queued(api.ctx.sessions, 8301)) == before + 1
    with api.ctx.sessions() as s:
        assert s.get(Case, case_id).status == Status.IN_PROGRESS and s.get(MachineCase, case_id).clear_pending


async def test_clear_with_the_ignore_rule_only_records(api) -> None:
    await api.client.put("/api/v1/categories/exposed_garbage/intake-rule", headers=api.auth("admin"),
                         json={"on_clear": "ignore", "fold_window_s": 600})
    case_id = (await api.intake("street_a", event="i1")).json()["case"]["id"]
    r = await api.client.post(f"/api/v1/cases/{case_id}/clear", headers=api.auth("street_a"))
    assert r.json()["outcome"] == "recorded" and r.json()["case"]["status"] == "registered"
    with api.ctx.sessions() as s:
        assert s.get(MachineCase, case_id).cleared_at == api.clock.now()


async def test_only_machine_cases_can_be_cleared(api) -> None:
    lat, lon = api.point(STREET_A)
    case = report_case(api.ctx, actor=Actor(Role.RESIDENT), source=CaseSource.RESIDENT,
                       category_code="exposed_garbage", lat=lat, lon=lon)
    r = await api.client.post(f"/api/v1/cases/{case.id}/clear", headers=api.auth("street_a"))
    assert r.status_code == 409 and r.json()["code"] == "not_machine_case"


async def test_concurrent_deliveries_of_one_event_open_one_case(api) -> None:
    results = await asyncio.gather(*(api.intake("street_a", event="burst") for _ in range(6)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and set(codes) <= {200, 201, 409}
    assert count(api, Case) == 1
