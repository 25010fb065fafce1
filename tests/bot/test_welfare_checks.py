"""Elder alarms through the real bot and the loopback Bot API, on both stores: a listed elder's door sensor at
night reaches whoever is on the roster, the outcome is recorded with an on-site location, the family is told,
"no answer" escalates to the street and its 居委会, and a gap in the roster alerts the supervisor."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from models.elders import FamilyNotice, WelfareCheck
from models.lifecycle import Status
from models.tables import Case, Proof
from services import duty_roster
from tests.bot.alarm_kit import (
    BOSS,
    COMMITTEE,
    DAY_WORKER,
    FAMILY,
    NIGHT_WORKER,
    night_world,
    sensor_alarm,
)
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    STREET,
    answer_to,
    button,
    button_texts,
    emulator,
    offset,
    world,
)

T = 20.0  # seconds: generous, for a loaded machine (nothing here waits on time passing)


async def accepted_check(world, emulator, db, clock):  # noqa: ANN001, ANN201
    ids = await night_world(world, db, clock)
    worker = emulator.user(NIGHT_WORKER, first_name="Wang", language_code="en")
    day = emulator.user(DAY_WORKER, first_name="Day", language_code="en")
    answer = await sensor_alarm(world)
    assert answer.status_code == 201, answer.text
    [order] = await worker.wait_inbox(1, timeout=T)
    await worker.press(order, button(order, "wo:a:"))
    await answer_to(emulator, NIGHT_WORKER, timeout=T)
    await emulator.wait_for(lambda: worker.inbox[0]["text"].startswith("✅ You accepted"), timeout=T)
    with db.sessions() as s:
        case = s.exec(select(Case)).one()
    return ids, worker, day, order, case


async def choose(worker, emulator, label: str) -> dict:  # noqa: ANN001
    before = len(worker.inbox)
    [data] = [key["callback_data"] for row in worker.inbox[0]["reply_markup"]["inline_keyboard"] for key in row
              if key["text"] == label]
    await worker.press(worker.inbox[0], data)
    await emulator.wait_for(lambda: len(worker.inbox) > before, timeout=T)
    return worker.inbox[before]


async def send_location(worker, emulator, lat: float, lon: float, **kw) -> dict:  # noqa: ANN001
    before = len(worker.inbox)
    await worker.send_location(lat, lon, **kw)
    await emulator.wait_for(lambda: len(worker.inbox) > before, timeout=T)
    return worker.inbox[before]


async def test_a_night_alarm_reaches_the_on_call_worker_and_safe_is_recorded_on_site(world, emulator, db,
                                                                                    clock) -> None:
    ids, worker, day, order, case = await accepted_check(world, emulator, db, clock)
    family = emulator.user(FAMILY, first_name="Fang", language_code="zh-hans")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    text = order["text"]
    # The order carries who lives there, the keys and the family, whole: the worker must go and ring.
    assert "🚨 Welfare check: 陈阿婆, living alone (device DS-1001)" in text
    assert "Home: 南京东路100弄3号201室" in text
    assert "Key holder: 邻居赵阿姨 13900001111" in text
    assert "Family: 王芳 13800002222" in text
    assert day.inbox == []  # on normal duty, but not on tonight's roster
    accepted = worker.inbox[0]
    assert "On site, press what you found, then share your location there." in accepted["text"]
    assert button_texts(accepted)[:4] == ["🙂 Safe", "🚑 Needs help (120 called)", "🏠 Not at home (family reached)",
                                          "🚨 No answer: escalate"]

    prompt = await choose(worker, emulator, "🙂 Safe")
    assert prompt["text"].startswith(f"Case {case.number}: 🙂 Safe. Now share your location at the home")
    assert emulator.reply_keyboard(NIGHT_WORKER)["keyboard"][0][0]["request_location"] is True

    far = offset(case.lat, case.lon, north_m=400)
    refused = await send_location(worker, emulator, *far, horizontal_accuracy=10)
    assert refused["text"].startswith("📍 You are 400 m from the case point")
    with db.sessions() as s:
        assert s.exec(select(WelfareCheck)).one().outcome is None  # nothing recorded from afar

    near = offset(case.lat, case.lon, north_m=20)
    receipt = await send_location(worker, emulator, *near, horizontal_accuracy=10)
    assert receipt["text"].startswith(f"✅ Outcome recorded for case {case.number}: 🙂 Safe (20 m from the home).")
    assert "Family contacts to be told: 2." in receipt["text"]

    [told] = await family.wait_inbox(1, timeout=T)
    assert "陈阿婆" in told["text"] and "23:30" in told["text"]
    await boss.wait_inbox(1, timeout=T)  # the verification card
    assert boss.inbox[0]["text"].startswith(f"🔍 Please verify case {case.number}")
    with db.sessions() as s:
        check = s.exec(select(WelfareCheck)).one()
        stored = s.get(Case, case.id)
        proof = s.exec(select(Proof)).one()
        notices = {n.contact_name: (n.channel, n.status) for n in s.exec(select(FamilyNotice)).all()}
    assert (check.outcome, check.worker_id, round(check.distance_m)) == ("safe", ids["night"], 20)
    assert stored.status == Status.AWAITING_VERIFICATION
    assert round(proof.distance_m) == 20
    # Told by the bot where they have a chat; no SMS gateway, and the record says so. 张三 chose not to be told.
    assert notices == {"王芳": ("telegram", "queued"), "李强": ("sms", "sms_not_configured")}


async def test_no_answer_escalates_to_the_street_and_its_committee_at_once(world, emulator, db, clock) -> None:
    ids, worker, _day, _order, case = await accepted_check(world, emulator, db, clock)
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    committee = emulator.user(COMMITTEE, first_name="JW", language_code="en")
    family = emulator.user(FAMILY, first_name="Fang", language_code="zh-hans")
    await choose(worker, emulator, "🚨 No answer: escalate")
    receipt = await send_location(worker, emulator, *offset(case.lat, case.lon, east_m=15), horizontal_accuracy=8)
    assert "The street supervisor and the neighbourhood committee are told now." in receipt["text"]

    [alert] = await boss.wait_inbox(1, timeout=T)
    assert alert["text"].startswith(f"🚨 Welfare check {case.number}: nobody answers at the door. Night Wang is on site.")
    assert "Key holder: 邻居赵阿姨 13900001111" in alert["text"]
    [to_committee] = await committee.wait_inbox(1, timeout=T)
    assert to_committee["text"] == alert["text"]
    await family.wait_inbox(1, timeout=T)
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS  # still the worker's, to record again later
        assert s.exec(select(WelfareCheck)).one().outcome == "no_answer"


async def test_a_gap_in_the_roster_alerts_the_street_supervisor_once(world, emulator, db, clock) -> None:
    await night_world(world, db, clock)
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    clock.advance(hours=-12)  # 11:30 on Saturday: the night shift starts at 20:00, nobody covers the day
    new = await asyncio.to_thread(duty_roster.check_gaps, world.ctx)
    assert new >= 1
    alerts = await boss.wait_inbox(1, timeout=T)
    assert any(a["text"].startswith("⚠️ Duty roster gap: nobody is on call for") and "now, until 11-21 20:00"
               in a["text"] for a in alerts)
    count = len(boss.inbox)
    assert await asyncio.to_thread(duty_roster.check_gaps, world.ctx) == 0  # the same gap: told once
    clock.advance(minutes=30)
    assert await asyncio.to_thread(duty_roster.check_gaps, world.ctx) == 0
    await asyncio.sleep(0.3)
    assert len(boss.inbox) == count
