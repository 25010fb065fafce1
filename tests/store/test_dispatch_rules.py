"""Dispatch on the demo map, on SQLite and PostgreSQL: who is offered a case, and what happens when nobody is there."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.supervision import SupervisorTopic
from models.tables import Area, Case, CaseEvent, CaseSource, Notification
from models.work import CaseTask, Escalation, EscalationReason, OfferStatus, TaskStatus, WorkOffer
from services import work
from services.context import ServiceContext
from onegrid.wiring import make_bus
from services.db import transaction
from tests.worker_support import (
    GRID,
    OTHER_GRID,
    STREET,
    add_person,
    add_supervisor,
    add_worker,
    make_ctx,
    picture,
    queued,
    report,
)
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def offers_of(db, case_id: int) -> list[WorkOffer]:
    with db.sessions() as s:
        return list(s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id).order_by(WorkOffer.id)).all())


def tasks_of(db, case_id: int) -> list[CaseTask]:
    with db.sessions() as s:
        return list(s.exec(select(CaseTask).where(CaseTask.case_id == case_id).order_by(CaseTask.id)).all())


def test_case_is_offered_to_the_on_duty_worker_of_its_department_in_its_grid(ctx, db, clock) -> None:
    right = add_worker(db.sessions, clock.now(), 501)
    add_worker(db.sessions, clock.now(), 502, on_duty=False)  # off duty
    add_worker(db.sessions, clock.now(), 503, area_code=OTHER_GRID)  # another grid
    add_worker(db.sessions, clock.now(), 504, department_code="urban_management")  # another department
    add_worker(db.sessions, clock.now(), 505, active=False)  # deactivated

    case = report(ctx)

    assert case.grid_code == GRID and case.status == Status.DISPATCHED
    assert [(o.worker_id, o.status) for o in offers_of(db, case.id)] == [(right, OfferStatus.OPEN)]
    [task] = tasks_of(db, case.id)
    assert (task.department_code, task.status, task.lead) == ("greening_appearance", TaskStatus.OFFERED, True)
    [message] = queued(db.sessions, 501)  # one message: no photo, so the order as text with its buttons
    assert message.method == "sendMessage" and f"Work order {case.number}" in message.payload["text"]
    assert "Exposed garbage" in message.payload["text"] and "Garbage piled by the gate" in message.payload["text"]
    assert "Address: 12 Nanjing East Road" in message.payload["text"]
    [accept_return, [navigate]] = message.payload["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"][:5] for b in accept_return] == ["wo:a:", "wo:r:"]
    assert navigate["url"].startswith(f"https://uri.amap.com/marker?position={case.lon:.6f},{case.lat:.6f}&")
    for other in (502, 503, 504, 505):
        assert queued(db.sessions, other) == []


def test_work_order_carries_the_photo_and_masks_the_reporter(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 511)
    resident = add_person(db.sessions, clock.now(), telegram_user_id=512, roles=["resident"], name="王小明",
                          phone="+86 138 1234 5678")
    case = report(ctx, reporter_id=resident, photo=picture(1))
    [photo] = queued(db.sessions, 511)  # one message: the photo, the order its caption
    text = photo.payload["caption"]
    assert text.startswith(f"🆕 Work order {case.number}\n")
    # one rule for staff everywhere (the supervisor card's too): no name, not even the surname
    assert "Reporter: resident 138****5678" in text
    assert "王" not in text and "小明" not in text and "1234" not in text
    assert photo.method == "sendPhoto" and (ctx.settings.data_dir / photo.payload["photo_path"]).is_file()
    assert "uri.amap.com/marker?position=" in text and "coordinate=wgs84" in text
    assert [b["text"] for row in photo.payload["reply_markup"]["inline_keyboard"] for b in row] == [
        "✅ Accept", "↩️ Return to dispatcher", "🧭 Navigate"]


def test_least_open_orders_first_within_the_offer_limit(ctx, db, clock) -> None:
    w1, w2, w3, w4 = (add_worker(db.sessions, clock.now(), 520 + i) for i in range(4))
    first = report(ctx)
    assert {o.worker_id for o in offers_of(db, first.id)} == {w1, w2, w3}  # limit 3, ties by seniority
    offer = next(o for o in offers_of(db, first.id) if o.worker_id == w1)
    work.accept_offer(ctx, offer_id=offer.id, worker_id=w1)
    second = report(ctx)
    # w1 now holds an order; w2..w4 hold none (their offers of the first case were closed as taken).
    assert {o.worker_id for o in offers_of(db, second.id)} == {w2, w3, w4}


def test_parent_area_pool_when_the_grid_has_nobody_on_duty(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 531, on_duty=False)
    pool = add_worker(db.sessions, clock.now(), 532, area_code=STREET)
    case = report(ctx)
    assert [o.worker_id for o in offers_of(db, case.id)] == [pool]


def test_nobody_on_duty_waits_and_tells_the_nearest_supervisor(ctx, db, clock) -> None:
    near = add_supervisor(db.sessions, clock.now(), 541, area_code=STREET)
    add_supervisor(db.sessions, clock.now(), 542, area_code="SH-HP")  # further up: not bothered
    case = report(ctx)
    assert case.status == Status.REGISTERED
    [task] = tasks_of(db, case.id)
    assert task.status == TaskStatus.WAITING
    with db.sessions() as s:
        [escalation] = s.exec(select(Escalation)).all()
    assert (escalation.reason, escalation.notified_person_ids, escalation.area_code) == (
        EscalationReason.NO_WORKER, [near], GRID)
    [notice] = queued(db.sessions, 541)
    assert f"No worker available for case {case.number}" in notice.payload["text"]
    assert queued(db.sessions, 542) == []

    # A worker of that department coming on duty picks the waiting order up.
    worker = add_worker(db.sessions, clock.now(), 543, on_duty=False)
    result = work.set_duty(ctx, person_id=worker)
    assert (result.on_duty, result.picked_up) == (True, 1)
    assert [o.worker_id for o in offers_of(db, case.id)] == [worker]
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.DISPATCHED
        assert s.exec(select(Escalation)).one().resolved_at == clock.now()


def test_no_supervisor_anywhere_still_records_the_escalation(ctx, db, clock) -> None:
    case = report(ctx)
    with db.sessions() as s:
        [escalation] = s.exec(select(Escalation).where(Escalation.case_id == case.id)).all()
        assert escalation.notified_person_ids == [] and s.exec(select(Notification)).all() == []


def test_nobody_on_duty_goes_to_the_forum_topic_of_the_grid_in_the_supervisor_group(ctx, db, clock) -> None:
    group = -100_555
    with transaction(db.sessions) as s:
        street = s.exec(select(Area).where(Area.code == STREET)).one()
        street.supervisor_chat_id = group
        s.add(street)
        s.add(SupervisorTopic(chat_id=group, area_code=GRID, message_thread_id=77))
        s.add(SupervisorTopic(chat_id=group, area_code=OTHER_GRID, message_thread_id=88))
    case = report(ctx)  # in GRID, nobody on duty
    [notice] = queued(db.sessions, group)
    assert f"案件{case.number}暂无可派网格员" in notice.payload["text"]  # a group reads the city's language
    assert notice.payload["message_thread_id"] == 77  # the grid's own topic, not another grid's
    with db.sessions() as s:
        assert s.exec(select(Escalation)).one().notified_chat_ids == [group]


def test_joint_category_gets_one_task_per_department(ctx, db, clock) -> None:
    departments = ["street_office", "police_station", "market_regulation", "residents_committee"]
    workers = {d: add_worker(db.sessions, clock.now(), 550 + i, department_code=d) for i, d in enumerate(departments)}
    case = report(ctx, category="neighbour_dispute")
    tasks = tasks_of(db, case.id)
    assert [t.department_code for t in tasks] == departments and [t.lead for t in tasks] == [True, False, False, False]
    assert {(o.task_id, o.worker_id) for o in offers_of(db, case.id)} == {
        (t.id, workers[t.department_code]) for t in tasks}
    text = queued(db.sessions, 551)[0].payload["text"]  # the police station's worker
    assert "Joint handling with: Sub-district Office, Administration for Market Regulation, Residents&#x27; Committee" in text


def test_patrol_case_is_assigned_to_its_reporter_at_once(ctx, db, clock) -> None:
    patroller = add_worker(db.sessions, clock.now(), 561)
    add_worker(db.sessions, clock.now(), 562)
    case = report(ctx, reporter_id=patroller, source=CaseSource.PATROL, description="Found on patrol")
    assert case.status == Status.IN_PROGRESS and case.handler_id == patroller and case.assignee_id == patroller
    [task] = tasks_of(db, case.id)
    assert (task.status, task.assignee_id) == (TaskStatus.ACCEPTED, patroller)
    assert queued(db.sessions, 562) == []  # nobody else is offered it
    [message] = queued(db.sessions, 561)
    assert f"Your patrol report is case {case.number}, assigned to you." in message.payload["text"]
    with db.sessions() as s:
        actions = [e.action for e in s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                            .order_by(CaseEvent.id))]
    assert actions == ["report", "register", "dispatch", "accept"]


def test_case_outside_any_loaded_map_stays_registered(db, clock, tmp_path) -> None:
    bare = ServiceContext(bus=make_bus(), sessions=db.sessions, clock=clock)  # no grid map: the foundation's own tests run so
    make_ctx(db.sessions, clock, tmp_path)
    add_worker(db.sessions, clock.now(), 571)
    case = report(bare)
    assert case.status == Status.REGISTERED and case.grid_code is None and tasks_of(db, case.id) == []
