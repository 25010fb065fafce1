"""Welfare checks on a real store (SQLite and PostgreSQL): a listed device's alarm becomes a check on the elder's
record, nobody on call means the supervisors are told, and the minute ladder reaches the 居委会."""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import select

from models.elders import WelfareCheck
from models.tables import CaseSource
from models.work import CaseTask, TaskStatus, WorkOffer
from services import duty_roster, escalation, welfare
from services.api_keys import Principal
from services.intake_machine import MachineReport, intake_event
from models.lifecycle import Role
from tests.bot.alarm_kit import DEVICE, list_elder
from tests.worker_support import GRID, STREET, add_supervisor, add_worker, make_ctx, point_in, queued

NIGHT, SUP, COMMITTEE = 611, 612, 613
SENSORS = Principal(id=None, key_id="sensors", name="sensors", scopes=frozenset({"intake"}), area_code=None,
                    acts_as=Role.SYSTEM, rate_per_minute=1000)


def alarm(ctx, *, device: str = DEVICE, event: str = "e1", category: str = "elderly_door_sensor_alarm"):  # noqa: ANN001, ANN201
    lat, lon = point_in(GRID)
    ctx = replace(ctx, on_registered=None)  # dispatch inline, as without a dispatcher loop
    return intake_event(ctx, principal=SENSORS, report=MachineReport(
        source=CaseSource.SENSOR, event_id=event, category_code=category, lat=lat, lon=lon, device_id=device)).case


def test_an_unlisted_device_is_an_ordinary_case_and_a_listed_one_a_check_for_whoever_is_on_call(db, clock,
                                                                                              tmp_path) -> None:
    ctx = make_ctx(db.sessions, clock, tmp_path)
    now = clock.now()  # Saturday 10:00 in Shanghai
    on_call = add_worker(db.sessions, now, NIGHT, department_code="civil_affairs", on_duty=False)
    regular = add_worker(db.sessions, now, 614, department_code="residents_committee", on_duty=True)
    duty_roster.add_shift(ctx, principal=None, data=duty_roster.ShiftInput(
        area_code=GRID, person_id=on_call, weekdays=[5], start="08:00", end="12:00"))
    list_elder(ctx)

    ordinary = alarm(ctx, device="UNLISTED-9", event="e0")
    checked = alarm(ctx)
    with db.sessions() as s:
        checks = s.exec(select(WelfareCheck)).all()
        offered = {o.case_id: o.worker_id for o in s.exec(select(WorkOffer)).all()}
        tasks = s.exec(select(CaseTask).where(CaseTask.case_id == checked.id)).all()
    assert [c.case_id for c in checks] == [checked.id]
    assert offered[ordinary.id] == regular  # ordinary dispatch: on normal duty in the department
    assert offered[checked.id] == on_call  # the roster, not normal duty nor department
    assert [t.status for t in tasks] == [TaskStatus.OFFERED]


def test_nobody_on_call_tells_the_supervisors_and_the_ladder_reaches_the_committee_in_minutes(db, clock,
                                                                                               tmp_path) -> None:
    ctx = make_ctx(db.sessions, clock, tmp_path)
    now = clock.now()
    add_supervisor(db.sessions, now, SUP, area_code=STREET)
    welfare.add_contact(ctx, area_code=STREET, name="江苏路居委会", phone="021-62000000", chat_id=COMMITTEE,
                        locale="en")
    list_elder(ctx)
    case = alarm(ctx)
    assert any("No worker available for case" in n.payload["text"] for n in queued(db.sessions, SUP, "sendMessage"))
    assert queued(db.sessions, COMMITTEE) == []

    clock.advance(minutes=4)  # accept in 5 minutes; the street's step 2 minutes after, the committee's 5
    escalation.sweep(ctx)
    assert queued(db.sessions, COMMITTEE) == []
    clock.advance(minutes=7)
    escalation.sweep(ctx)
    [told] = queued(db.sessions, COMMITTEE, "sendMessage")
    assert told.payload["text"].startswith(f"🚨 Welfare check {case.number}: nobody has accepted it yet.")
    assert "Home: 南京东路100弄3号201室" in told.payload["text"]
    escalation.sweep(ctx)
    assert len(queued(db.sessions, COMMITTEE, "sendMessage")) == 1  # each step once
