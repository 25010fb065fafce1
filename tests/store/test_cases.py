"""Case service on a real store (SQLite and PostgreSQL): numbers, audit events, outbox, concurrency."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import func, select

from models.events.resident import CaseStatusChanged
from models.lifecycle import Action, Actor, IllegalTransition, Role, SelfVerification, Status
from models.tables import Case, CaseEvent, CaseSource, Category, OutboxItem, Person
from services.cases import StaleCase, UnknownCategory, apply_action, report_case
from services.bus import EventBus
from services.context import ServiceContext
from onegrid.wiring import make_bus
from services.db import transaction


@pytest.fixture
def ctx(db, clock) -> ServiceContext:
    with transaction(db.sessions) as s:
        s.add(Category(code="exposed_garbage", kind="environment", name="暴露垃圾", name_en="Exposed garbage",
                       department_code="greening", accept_sla_minutes=30, handle_sla_minutes=240))
        s.add(Category(code="retired", kind="environment", name="旧", name_en="Old", department_code="x",
                       active=False))
        for i, role in enumerate(["resident", "worker", "worker", "supervisor"], start=1):
            s.add(Person(id=i, telegram_user_id=1000 + i, display_name=f"p{i}", roles=[role], created_at=clock.now()))
    return ServiceContext(bus=make_bus(), sessions=db.sessions, clock=clock)


RESIDENT, WORKER, WORKER2, SUPERVISOR = (Actor(Role.RESIDENT, 1), Actor(Role.WORKER, 2),
                                        Actor(Role.WORKER, 3), Actor(Role.SUPERVISOR, 4))


def report(ctx: ServiceContext) -> Case:
    return report_case(ctx, actor=RESIDENT, source=CaseSource.RESIDENT, category_code="exposed_garbage",
                       lat=31.2243, lon=121.4368, description="垃圾桶满溢")


def count(db, model) -> int:
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_report_registers_with_number_deadlines_events_and_outbox(ctx, db, clock) -> None:
    case = report(ctx)
    assert re.fullmatch(r"SH-20261121-000001", case.number)
    assert case.status == Status.REGISTERED and case.version == 2 and case.reporter_id == 1
    assert (case.accept_due_at - clock.now()).total_seconds() == 30 * 60
    assert (case.handle_due_at - clock.now()).total_seconds() == 240 * 60
    with db.sessions() as s:
        events = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)).all()
        topics = [o.topic for o in s.exec(select(OutboxItem).order_by(OutboxItem.id))]
    assert [(e.action, e.from_status, e.to_status) for e in events] == [
        ("report", None, "reported"), ("register", "reported", "registered")]
    assert topics == ["case.report", "case.register"]


def test_working_hour_and_working_day_deadlines_skip_the_weekend(ctx, db, clock) -> None:
    # Two working hours to accept, three working days to handle; reported on Friday 16:00 in Shanghai.
    with transaction(db.sessions) as s:
        s.add(Category(code="street_light_out", kind="roads", name="路灯不亮", name_en="Street light out",
                       department_code="roads", accept_sla_minutes=2, accept_sla_unit="hours",
                       handle_sla_minutes=3, handle_sla_unit="days"))
    clock.set(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))  # Fri 16:00 +08:00
    case = report_case(ctx, actor=RESIDENT, source=CaseSource.RESIDENT, category_code="street_light_out",
                       lat=31.2243, lon=121.4368, description="路灯坏了")
    # 1.5 h left on Friday (until 17:30), the other half hour on Monday from 08:30.
    assert case.accept_due_at == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Mon 09:00 +08:00
    # Monday, Tuesday, Wednesday: the end of Wednesday's working day.
    assert case.handle_due_at == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # Wed 17:30 +08:00
    assert case.next_escalation_at == case.accept_due_at


def test_case_numbers_follow_the_city_day(ctx, clock) -> None:
    first, second = report(ctx), report(ctx)
    clock.advance(hours=16)  # 02:00 UTC + 16 h = 02:00 next day in Shanghai
    third = report(ctx)
    assert [first.number, second.number, third.number] == [
        "SH-20261121-000001", "SH-20261121-000002", "SH-20261122-000001"]


def test_concurrent_reports_never_share_a_number(ctx) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(lambda _: report(ctx).number, range(24)))
    assert len(set(numbers)) == 24


@pytest.mark.parametrize("code", ["no_such_category", "retired"])
def test_unknown_or_inactive_category_stores_nothing(ctx, db, code) -> None:
    with pytest.raises(UnknownCategory):
        report_case(ctx, actor=RESIDENT, source=CaseSource.RESIDENT, category_code=code, lat=31.2, lon=121.4)
    assert count(db, Case) == 0 and count(db, CaseEvent) == 0 and count(db, OutboxItem) == 0


def test_full_workflow_writes_one_event_per_status_change(ctx, db, clock) -> None:
    case = report(ctx)
    steps = [(Action.DISPATCH, Actor(Role.SYSTEM), None), (Action.ACCEPT, WORKER, None),
             (Action.COMPLETE, WORKER, None), (Action.APPROVE, SUPERVISOR, None)]
    for action, actor, note in steps:
        clock.advance(minutes=5)
        case = apply_action(ctx, case_id=case.id, action=action, actor=actor, note=note)
    assert case.status == Status.CLOSED and case.handler_id == 2 and case.verifier_id == 4
    assert case.closed_at == clock.now()
    assert count(db, CaseEvent) == 2 + len(steps)
    assert count(db, OutboxItem) == 2 + len(steps)


def test_refused_action_writes_nothing(ctx, db) -> None:
    case = report(ctx)
    before = (count(db, CaseEvent), count(db, OutboxItem))
    with pytest.raises(IllegalTransition):
        apply_action(ctx, case_id=case.id, action=Action.APPROVE, actor=SUPERVISOR)
    with db.sessions() as s:
        stored = s.get(Case, case.id)
    assert stored.status == Status.REGISTERED and stored.version == case.version
    assert (count(db, CaseEvent), count(db, OutboxItem)) == before


def test_handler_cannot_verify_own_work(ctx) -> None:
    case = report(ctx)
    boss_worker = Actor(Role.SUPERVISOR, 4)
    apply_action(ctx, case_id=case.id, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))
    apply_action(ctx, case_id=case.id, action=Action.ACCEPT, actor=boss_worker)  # supervisor takes over
    apply_action(ctx, case_id=case.id, action=Action.COMPLETE, actor=boss_worker)
    with pytest.raises(SelfVerification):
        apply_action(ctx, case_id=case.id, action=Action.APPROVE, actor=boss_worker)


def test_first_accept_wins_when_two_workers_race(ctx, db) -> None:
    case = report(ctx)
    case = apply_action(ctx, case_id=case.id, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))
    seen_version = case.version
    winner = apply_action(ctx, case_id=case.id, action=Action.ACCEPT, actor=WORKER, expected_version=seen_version)
    with pytest.raises(StaleCase):
        apply_action(ctx, case_id=case.id, action=Action.ACCEPT, actor=WORKER2, expected_version=seen_version)
    with db.sessions() as s:
        assert s.get(Case, case.id).handler_id == winner.handler_id == 2


def test_every_status_change_publishes_case_status_changed_with_its_facts(ctx, db, clock) -> None:
    seen: list[CaseStatusChanged] = []
    ctx.bus = EventBus({CaseStatusChanged: [lambda session, _ctx, event: seen.append(event)]})
    case = report(ctx)
    at_report = clock.now()
    clock.advance(minutes=3)
    apply_action(ctx, case_id=case.id, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))
    apply_action(ctx, case_id=case.id, action=Action.ACCEPT, actor=WORKER)
    apply_action(ctx, case_id=case.id, action=Action.RETURN, actor=WORKER, note="wrong department")
    assert seen == [
        CaseStatusChanged(case_id=case.id, number=case.number, from_status=Status.REPORTED,
                          to_status=Status.REGISTERED, action=Action.REGISTER, actor_person_id=None, note=None,
                          at=at_report),
        CaseStatusChanged(case_id=case.id, number=case.number, from_status=Status.REGISTERED,
                          to_status=Status.DISPATCHED, action=Action.DISPATCH, actor_person_id=None, note=None,
                          at=clock.now()),
        CaseStatusChanged(case_id=case.id, number=case.number, from_status=Status.DISPATCHED,
                          to_status=Status.IN_PROGRESS, action=Action.ACCEPT, actor_person_id=WORKER.person_id,
                          note=None, at=clock.now()),
        CaseStatusChanged(case_id=case.id, number=case.number, from_status=Status.IN_PROGRESS,
                          to_status=Status.RETURNED, action=Action.RETURN, actor_person_id=WORKER.person_id,
                          note="wrong department", at=clock.now()),
    ]
    assert count(db, CaseEvent) == len(seen) + 1  # one per change; the REPORT row opens the case


def test_a_refused_change_publishes_nothing(ctx) -> None:
    case = report(ctx)
    seen: list[CaseStatusChanged] = []
    ctx.bus = EventBus({CaseStatusChanged: [lambda session, _ctx, event: seen.append(event)]})
    with pytest.raises(IllegalTransition):
        apply_action(ctx, case_id=case.id, action=Action.APPROVE, actor=SUPERVISOR)
    assert seen == []
