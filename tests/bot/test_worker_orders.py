"""Work orders through the real bot and the loopback Bot API: dispatch, Accept races, Return, /duty, /tasks."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case, CaseEvent
from models.work import OfferStatus, WorkOffer
from bot.renderers.work_text import local_time
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    OTHER_GRID,
    STREET,
    add_person,
    add_supervisor,
    add_worker,
    answer_to,
    button,
    button_texts,
    emulator,
    picture,
    report,
    settle,
    world,
)


def case_row(db, case_id: int) -> Case:
    with db.sessions() as s:
        return s.get(Case, case_id)


async def test_the_grids_on_duty_worker_gets_the_order_with_photo_location_and_masked_reporter(
        world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9001, name="Wang Wei")
    add_worker(db.sessions, clock.now(), 9002, area_code=OTHER_GRID)
    add_worker(db.sessions, clock.now(), 9003, on_duty=False)
    add_worker(db.sessions, clock.now(), 9004, department_code="traffic_police")
    resident = add_person(db.sessions, clock.now(), telegram_user_id=9005, roles=["resident"], name="李小龙",
                          phone="13912345678")
    wang = emulator.user(9001, first_name="Wang", language_code="en")

    case = await asyncio.to_thread(report, world.ctx, reporter_id=resident, photo=picture(5))

    [order] = await wang.wait_inbox(1)
    text = order["text"]
    assert text.startswith(f"🆕 Work order {case.number}\nCategory: Exposed garbage\n")
    assert "Grid: East Nanjing Road Grid 1" in text and "Address: 12 Nanjing East Road" in text
    assert "Reporter: resident 139****5678" in text and "李" not in text and "12345678" not in text
    assert button_texts(order) == ["✅ Accept", "↩️ Return to dispatcher"]
    links = [e["url"] for e in order.get("entities", []) if e["type"] == "text_link"]
    assert any(url.startswith("https://uri.amap.com/marker?position=") for url in links)
    settle(clock)
    _, photo, venue = await wang.wait_inbox(3)
    assert photo["caption"] == f"Resident's photo · {case.number}" and photo["photo"]
    assert venue["venue"]["address"] == "12 Nanjing East Road"
    assert abs(venue["location"]["latitude"] - case.lat) < 1e-6
    for other in (9002, 9003, 9004, 9005):
        assert emulator.sent(other) == []
    assert case_row(db, case.id).status == Status.DISPATCHED


async def test_two_workers_press_accept_at_once_and_exactly_one_wins(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9011)
    add_worker(db.sessions, clock.now(), 9012)
    a = emulator.user(9011, first_name="A", language_code="en")
    b = emulator.user(9012, first_name="B", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order_a] = await a.wait_inbox(1)
    [order_b] = await b.wait_inbox(1)
    settle(clock)
    await a.wait_inbox(2)
    await b.wait_inbox(2)

    await asyncio.gather(a.press(order_a, button(order_a, "wo:a:")), b.press(order_b, button(order_b, "wo:a:")))

    [answer_a] = await answer_to(emulator, 9011)
    [answer_b] = await answer_to(emulator, 9012)
    won = [x for x in (answer_a, answer_b) if x["text"] == f"Accepted: case {case.number} is yours."]
    lost = [x for x in (answer_a, answer_b) if x["text"] == f"Work order {case.number} was already taken by another "
                                                            "worker."]
    assert len(won) == 1 and len(lost) == 1 and lost[0]["show_alert"] is True
    winner, loser = (a, b) if won[0] is answer_a else (b, a)

    def first_text(user) -> str:  # noqa: ANN001
        return emulator.sent(user.id)[0]["text"]

    await emulator.wait_for(lambda: "taken by another worker" in first_text(loser)
                            and first_text(winner).startswith("✅ You accepted"))
    assert first_text(loser) == f"Work order {case.number} was taken by another worker. No action needed."
    assert "reply_markup" not in emulator.sent(loser.id)[0]  # no buttons left to press
    assert button_texts(emulator.sent(winner.id)[0]) == ["📸 Complete", "↩️ Return to dispatcher"]
    stored = case_row(db, case.id)
    assert (stored.status, stored.handler_id) == (Status.IN_PROGRESS, stored.assignee_id)
    with db.sessions() as s:
        accepts = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "accept")).all()
    assert len(accepts) == 1 and accepts[0].actor_id == stored.handler_id


async def test_a_double_tap_accepts_once(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9021)
    w = emulator.user(9021, first_name="W", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await w.wait_inbox(1)
    settle(clock)
    await w.wait_inbox(2)
    data = button(order, "wo:a:")
    await asyncio.gather(w.press(order, data), w.press(order, data))
    answers = await answer_to(emulator, 9021, 2)
    assert sorted(x["text"] for x in answers) == [f"Accepted: case {case.number} is yours.",
                                                  f"You have already accepted case {case.number}."]
    with db.sessions() as s:
        assert len(s.exec(select(CaseEvent).where(CaseEvent.action == "accept")).all()) == 1


async def test_return_with_a_reason_sends_the_order_to_another_worker(world, emulator, db, clock) -> None:
    first_id = add_worker(db.sessions, clock.now(), 9031)
    first = emulator.user(9031, first_name="First", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await first.wait_inbox(1)
    add_worker(db.sessions, clock.now(), 9032)  # comes on duty after the case was offered
    second = emulator.user(9032, first_name="Second", language_code="en")
    settle(clock)
    await first.wait_inbox(2)

    await first.press(order, button(order, "wo:r:"))
    [_, _, prompt] = await first.wait_inbox(3)
    assert prompt["text"] == ("Why are you returning this work order to the dispatcher? "
                              "Send the reason in one message.")
    await first.send_text("   ")
    await first.send_text("This is a fire lane, not garbage")
    await emulator.wait_for(lambda: any("Returned: work order" in m.get("text", "") for m in first.inbox))
    replies = [m["text"] for m in first.inbox[3:]]
    assert replies == ["Please write the reason in a few words.",
                       f"Returned: work order {case.number} goes back to the dispatcher. Thank you for saying why."]
    await emulator.wait_for(lambda: first.inbox[0]["text"].startswith("↩️ You returned"))
    assert first.inbox[0]["text"] == (f"↩️ You returned work order {case.number}.\n"
                                      "Reason: This is a fire lane, not garbage")

    [offer] = await second.wait_inbox(1)
    assert offer["text"].startswith(f"🆕 Work order {case.number}")
    with db.sessions() as s:
        events = [(e.action, e.to_status, e.note) for e in
                  s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id))]
        returned = s.exec(select(WorkOffer).where(WorkOffer.worker_id == first_id)).one()
    assert events[-2:] == [("return", "returned", "This is a fire lane, not garbage"),
                           ("dispatch", "dispatched", None)]
    assert (returned.status, returned.note) == (OfferStatus.DECLINED, "This is a fire lane, not garbage")


async def test_duty_toggles_and_an_off_duty_worker_gets_nothing(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9041, on_duty=False)
    add_supervisor(db.sessions, clock.now(), 9042, area_code=STREET)
    worker = emulator.user(9041, first_name="Duty", language_code="en")
    boss = emulator.user(9042, first_name="Boss", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [alert] = await boss.wait_inbox(1)
    assert alert["text"].startswith(f"⚠️ No worker available for case {case.number}")
    assert worker.inbox == []

    await worker.send_command("/duty")
    on, order = await worker.wait_inbox(2)
    assert on["text"] == "🟢 You are on duty. New work orders of your area will come here."
    assert order["text"].startswith(f"🆕 Work order {case.number}")

    settle(clock)
    await worker.wait_inbox(3)
    await worker.send_command("/duty")
    await emulator.wait_for(lambda: any(m["text"].startswith("⚪") for m in worker.inbox if "text" in m))
    off = next(m["text"] for m in worker.inbox if m.get("text", "").startswith("⚪"))
    assert off == ("⚪ You are off duty and will get no new work orders. Orders you hold stay yours.\n"
                   "Offers passed on to others: 1.")
    later = await asyncio.to_thread(report, world.ctx)
    await emulator.wait_for(lambda: any(later.number in m.get("text", "") for m in boss.inbox))
    assert not any(later.number in m.get("text", "") for m in worker.inbox)


async def test_tasks_lists_held_orders_and_starts_completion(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9051)
    w = emulator.user(9051, first_name="W", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await w.wait_inbox(1)
    settle(clock)
    await w.wait_inbox(2)
    await w.press(order, button(order, "wo:a:"))
    await answer_to(emulator, 9051)
    await w.send_command("/tasks")
    [*_, listing] = await w.wait_inbox(3)
    due = local_time(case.handle_due_at, world.ctx.timezone)
    assert listing["text"] == f"📋 Your work orders:\n{case.number} · Exposed garbage · handle by {due}"
    assert button_texts(listing) == [f"📸 Complete {case.number}", "↩️ Return"]
    await w.press(listing, button(listing, "wt:c:"))
    [*_, prompt] = await w.wait_inbox(4)
    assert prompt["text"] == f"Case {case.number}: send 1 to 3 photos of the finished work."


async def test_a_chinese_speaking_worker_reads_the_order_in_chinese(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9061, locale="zh_CN")
    li = emulator.user(9061, first_name="李", language_code="zh-hans")
    case = await asyncio.to_thread(report, world.ctx, description="门口垃圾堆积")
    [order] = await li.wait_inbox(1)
    assert order["text"].startswith(f"🆕 新工单 {case.number}\n类别：暴露垃圾\n部门：绿化和市容管理局\n"
                                    "网格：南京东路街道第1网格\n")
    assert "描述：门口垃圾堆积" in order["text"] and "报告人：匿名" in order["text"]
    assert button_texts(order) == ["✅ 接单", "↩️ 退单"]
