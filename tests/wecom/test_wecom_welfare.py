"""Welfare checks on WeCom / 政务微信: the on-call worker and the street's supervisor use WeCom, the family and the
居委会 use Telegram. The worker presses what they found and sends their location at the home, as on Telegram
(tests/bot/test_welfare_checks.py), in the zh_CN catalogue's words."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from models.elders import WelfareCheck
from models.lifecycle import Status
from models.tables import Case
from services import duty_roster, welfare
from tests.bot.alarm_kit import COMMITTEE, FAMILY, NIGHT, list_elder, sensor_alarm
from tests.wecom.support import ZH, act, add_wecom_person, case_status, next_message, until
from tests.worker_support import GRID, STREET, offset
from wecom.emulator import WecomMember

OUTCOMES = [ZH("🙂 Safe"), ZH("🚑 Needs help"), ZH("🏠 Not at home"), ZH("🚨 No answer: escalate")]


async def accepted_check(world, wecom_emu, db, clock):  # noqa: ANN001, ANN201
    """The night roster's worker (on WeCom) gets the sensor's alarm and accepts it."""
    clock.set(NIGHT)
    night = add_wecom_person(db.sessions, clock.now(), "yewang", roles=["worker"], area_code=GRID,
                             department_code="residents_committee", name="夜班王", on_duty=False)
    add_wecom_person(db.sessions, clock.now(), "lijun", roles=["supervisor"], area_code=STREET, name="李军")
    await asyncio.to_thread(duty_roster.add_shift, world.ctx, principal=None, data=duty_roster.ShiftInput(
        area_code=STREET, person_id=night, weekdays=list(range(7)), start="20:00", end="08:00"))
    await asyncio.to_thread(welfare.add_contact, world.ctx, area_code=STREET, name="江苏路居委会",
                            phone="021-62000000", chat_id=COMMITTEE, locale="zh_CN")
    await asyncio.to_thread(list_elder, world.ctx)
    answer = await sensor_alarm(world)
    assert answer.status_code == 201, answer.text
    worker = WecomMember(wecom_emu, "yewang")
    order = await next_message(worker, 0)
    # The order carries who lives there, the keys and the family, whole: the worker must go and ring.
    assert ZH("🚨 Welfare check: {name}, living alone (device {device})").format(
        name="陈阿婆", device="DS-1001") in order.text
    assert ZH("Key holder: {name} {phone}").format(name="邻居赵阿姨", phone="13900001111") in order.text
    assert ZH("Family: {name} {phone}").format(name="王芳", phone="13800002222") in order.text
    accepted = await act(worker, lambda: worker.press(order, ZH("✅ Accept")))
    assert ZH("On site, press what you found, then share your location there.") in accepted.text
    assert list(accepted.buttons) == OUTCOMES
    with db.sessions() as s:
        case = s.get(Case, s.exec(select(WelfareCheck)).one().case_id)
    return worker, accepted, case


async def test_safe_is_recorded_on_wecom_with_the_location_at_the_home(world, wecom_emu, emulator, db,
                                                                       clock) -> None:
    worker, accepted, case = await accepted_check(world, wecom_emu, db, clock)
    family = emulator.user(FAMILY, first_name="Fang", language_code="zh-hans")
    number, lat, lon = case.number, case.lat, case.lon

    prompt = await act(worker, lambda: worker.press(accepted, ZH("🙂 Safe")))
    assert prompt.text == ZH("Case {number}: {outcome}.\nNow send your location at the home to record it, "
                             "or press Cancel to choose again.").format(number=number, outcome=ZH("🙂 Safe"))
    assert list(prompt.buttons) == [ZH("Cancel")]
    hint = await act(worker, lambda: worker.send_text("到了"))
    assert hint.text.startswith(ZH("Send your location at the home to record the outcome, or press Cancel."))

    far = await act(worker, lambda: worker.send_location(*offset(lat, lon, north_m=400)))
    assert far.text == ZH("📍 You are {distance} m from the case point; at most {allowed} m is accepted here. "
                          "Go to the place and send your location again.").format(distance=400, allowed=50)
    with db.sessions() as s:
        assert s.exec(select(WelfareCheck)).one().outcome is None  # nothing recorded from afar

    receipt = await act(worker, lambda: worker.send_location(*offset(lat, lon, north_m=20)))
    assert receipt.text.startswith(ZH("✅ Outcome recorded for case {number}: {outcome} ({distance} m from the "
                                      "home).").format(number=number, outcome=ZH("🙂 Safe"), distance=20))
    assert ZH("Family contacts to be told: {count}.").format(count=2) in receipt.text
    [told] = await family.wait_inbox(1)
    assert "陈阿婆" in told["text"]
    boss = WecomMember(wecom_emu, "lijun")
    card = await until(lambda: next((m for m in boss.inbox if m.task_id), None))  # the verification card
    assert card.body["template_card"]["main_title"]["title"] == ZH("🔍 Please verify case {number}").format(
        number=number)
    with db.sessions() as s:
        assert s.exec(select(WelfareCheck)).one().outcome == "safe"
    assert case_status(db, case.id) == Status.AWAITING_VERIFICATION


async def test_no_answer_on_wecom_alerts_the_supervisor_there_and_cancel_records_nothing(world, wecom_emu, emulator,
                                                                                      db, clock) -> None:
    worker, accepted, case = await accepted_check(world, wecom_emu, db, clock)
    committee = emulator.user(COMMITTEE, first_name="JW", language_code="zh-hans")
    number, lat, lon = case.number, case.lat, case.lon

    prompt = await act(worker, lambda: worker.press(accepted, ZH("🏠 Not at home")))
    cancelled = await act(worker, lambda: worker.press(prompt, ZH("Cancel")))
    assert cancelled.text == ZH("Cancelled: nothing was recorded. Press an outcome on the order again.")
    refused = await act(worker, lambda: worker.send_location(lat, lon))  # no outcome chosen any more
    assert refused.text == ZH("Press Complete on the work order first.")

    await act(worker, lambda: worker.press(accepted, ZH("🚨 No answer: escalate")))
    receipt = await act(worker, lambda: worker.send_location(*offset(lat, lon, east_m=15)))
    assert ZH("The street supervisor and the neighbourhood committee are told now. Stay near if you can, and record "
              "the outcome again when the door is opened.") in receipt.text
    boss = WecomMember(wecom_emu, "lijun")
    alert = await next_message(boss, 0)
    assert alert.text.startswith(ZH("🚨 Welfare check {number}: nobody answers at the door. {worker} is on site.")
                                 .format(number=number, worker="夜班王"))
    assert ZH("Key holder: {name} {phone}").format(name="邻居赵阿姨", phone="13900001111") in alert.text
    [to_committee] = await committee.wait_inbox(1)
    assert to_committee["text"] == alert.text  # the same words on Telegram and on WeCom
    with db.sessions() as s:
        assert s.exec(select(WelfareCheck)).one().outcome == "no_answer"
    assert case_status(db, case.id) == Status.IN_PROGRESS  # still the worker's, to record again later

