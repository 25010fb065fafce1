"""Work orders through the real bot and the loopback Bot API: dispatch, Accept races, Return, /duty, /tasks."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
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
    queued,
    report,
    settle,
    world,
)
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


def case_row(db, case_id: int) -> Case:
    with db.sessions() as s:
        return s.get(Case, case_id)


async def test_the_grids_on_duty_worker_gets_one_message_the_photo_with_the_order_and_its_buttons(
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
    assert order["photo"][-1]["width"] == 640  # the resident's (cleaned) photo
    text = order["caption"]
    assert text.startswith(f"🆕 Work order {case.number}\nCategory: Exposed garbage\n")
    assert "Grid: East Nanjing Road Grid 1" in text and "Address: 12 Nanjing East Road" in text
    assert "Reporter: resident 139****5678" in text and "李" not in text and "12345678" not in text
    assert button_texts(order) == ["✅ Accept", "↩️ Return to dispatcher", "🧭 Navigate"]
    assert navigate_target(order) == pytest.approx((case.lat, case.lon), abs=1e-6)
    links = [e["url"] for e in order.get("caption_entities", []) if e["type"] == "text_link"]
    assert any(url.startswith("https://uri.amap.com/marker?position=") for url in links)
    settle(clock)  # nothing follows it: no separate photo, no venue
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id)).one()
    assert [n.method for n in queued(db.sessions, 9001)] == ["sendPhoto"]
    assert offer.follow_up_notification_ids == []
    assert len(wang.inbox) == 1
    for other in (9002, 9003, 9004, 9005):
        assert emulator.sent(other) == []
    assert case_row(db, case.id).status == Status.DISPATCHED


async def test_a_case_without_a_photo_is_one_text_message_with_the_same_buttons(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9006)
    worker = emulator.user(9006, first_name="W", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)

    [order] = await worker.wait_inbox(1)
    assert "photo" not in order
    assert order["text"].startswith(f"🆕 Work order {case.number}\nCategory: Exposed garbage\n")
    assert "Description: Garbage piled by the gate" in order["text"]
    assert button_texts(order) == ["✅ Accept", "↩️ Return to dispatcher", "🧭 Navigate"]
    assert navigate_target(order) == pytest.approx((case.lat, case.lon), abs=1e-6)
    settle(clock)
    assert [n.method for n in queued(db.sessions, 9006)] == ["sendMessage"]
    assert len(worker.inbox) == 1


async def test_a_long_description_is_cut_to_fit_the_caption_and_stays_valid_html(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9007)
    worker = emulator.user(9007, first_name="W", language_code="en")
    description = "Bins <b>overflowing</b> & rats 🐀 by gate \"A\"; " * 30  # ~1,400 characters, markup-like
    case = await asyncio.to_thread(report, world.ctx, description=description, photo=picture(6))

    [order] = await worker.wait_inbox(1)  # Telegram (the emulator) parsed the HTML and took the caption
    caption = order["caption"]
    assert len(caption.encode("utf-16-le")) // 2 <= 1024
    shown = caption.split("Description: ", 1)[1].split("\n", 1)[0]
    assert shown.endswith("…") and description.startswith(shown[:-1].rstrip())
    assert "<b>overflowing</b> & rats 🐀" in shown  # the resident's text as written, not its escaping
    assert caption.rstrip().endswith("Navigate: Amap · Google Maps")  # only the description was cut
    assert button_texts(order) == ["✅ Accept", "↩️ Return to dispatcher", "🧭 Navigate"]

    await worker.press(order, button(order, "wo:a:"))
    await emulator.wait_for(lambda: worker.inbox[0]["caption"].startswith("✅ You accepted"))
    accepted = worker.inbox[0]["caption"]
    assert len(accepted.encode("utf-16-le")) // 2 <= 1024
    assert accepted.endswith("When the problem is solved, press Complete and send photos and your location.")
    assert case.number in accepted


async def test_accept_then_return_edit_the_photo_order_itself(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9008)
    worker = emulator.user(9008, first_name="W", language_code="en")
    case = await asyncio.to_thread(report, world.ctx, photo=picture(7))
    [order] = await worker.wait_inbox(1)

    await worker.press(order, button(order, "wo:a:"))
    await answer_to(emulator, 9008)
    await emulator.wait_for(lambda: worker.inbox[0]["caption"].startswith("✅ You accepted"))
    [accepted] = worker.inbox  # the same message, edited: still the photo, now the held order
    assert accepted["message_id"] == order["message_id"] and accepted["photo"] == order["photo"]
    assert accepted["caption"].startswith(f"✅ You accepted work order {case.number}\nCategory: Exposed garbage\n")
    assert button_texts(accepted) == ["📸 Complete", "↩️ Return to dispatcher", "🧭 Navigate", "📝 Progress note"]
    assert navigate_target(accepted) == pytest.approx((case.lat, case.lon), abs=1e-6)

    await worker.press(accepted, button(accepted, "wt:r:"))
    await worker.wait_inbox(2)
    await worker.send_text("Wrong department")
    await emulator.wait_for(lambda: worker.inbox[0]["caption"].startswith("↩️ You returned"))
    returned = worker.inbox[0]
    assert returned["caption"] == f"↩️ You returned work order {case.number}.\nReason: Wrong department"
    assert "reply_markup" not in returned and returned["photo"] == order["photo"]
    assert [m["message_id"] for m in worker.inbox if "photo" in m] == [order["message_id"]]
    assert [n.method for n in queued(db.sessions, 9008) if n.method.startswith("edit")] == ["editMessageCaption"] * 2


def navigate_target(message: dict) -> tuple[float, float]:
    """(lat, lon) that the message's Navigate button opens in Amap."""
    [url] = [key["url"] for row in message["reply_markup"]["inline_keyboard"] for key in row if "url" in key]
    query = parse_qs(urlsplit(url).query)
    lon, lat = map(float, query["position"][0].split(","))
    assert url.startswith("https://uri.amap.com/marker?") and query["coordinate"] == ["wgs84"]
    return lat, lon


async def test_two_workers_press_accept_at_once_and_exactly_one_wins(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9011)
    add_worker(db.sessions, clock.now(), 9012)
    a = emulator.user(9011, first_name="A", language_code="en")
    b = emulator.user(9012, first_name="B", language_code="en")
    case = await asyncio.to_thread(report, world.ctx, photo=picture(8))
    [order_a] = await a.wait_inbox(1)
    [order_b] = await b.wait_inbox(1)

    await asyncio.gather(a.press(order_a, button(order_a, "wo:a:")), b.press(order_b, button(order_b, "wo:a:")))

    [answer_a] = await answer_to(emulator, 9011)
    [answer_b] = await answer_to(emulator, 9012)
    won = [x for x in (answer_a, answer_b) if x["text"] == f"Accepted: case {case.number} is yours."]
    lost = [x for x in (answer_a, answer_b) if x["text"] == f"Work order {case.number} was already taken by another "
                                                            "worker."]
    assert len(won) == 1 and len(lost) == 1 and lost[0]["show_alert"] is True
    winner, loser = (a, b) if won[0] is answer_a else (b, a)

    def first_text(user) -> str:  # noqa: ANN001  (the order is the photo: its caption is edited)
        return emulator.sent(user.id)[0]["caption"]

    await emulator.wait_for(lambda: "taken by another worker" in first_text(loser)
                            and first_text(winner).startswith("✅ You accepted"))
    assert first_text(loser) == f"Work order {case.number} was taken by another worker. No action needed."
    assert "reply_markup" not in emulator.sent(loser.id)[0]  # no buttons left to press
    assert button_texts(emulator.sent(winner.id)[0]) == ["📸 Complete", "↩️ Return to dispatcher", "🧭 Navigate",
                                                        "📝 Progress note"]
    assert [len(emulator.sent(user.id)) for user in (winner, loser)] == [1, 1]  # edited, nothing new
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

    await first.press(order, button(order, "wo:r:"))
    [_, prompt] = await first.wait_inbox(2)
    assert prompt["text"] == ("Why are you returning this work order to the dispatcher? "
                              "Send the reason in one message.")
    await first.send_text("   ")
    await first.send_text("This is a fire lane, not garbage")
    await emulator.wait_for(lambda: any("Returned: work order" in m.get("text", "") for m in first.inbox))
    replies = [m["text"] for m in first.inbox[2:]]
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
    await w.press(order, button(order, "wo:a:"))
    await answer_to(emulator, 9051)
    await w.send_command("/tasks")
    [*_, listing] = await w.wait_inbox(2)
    due = local_time(case.handle_due_at, world.ctx.timezone)
    assert listing["text"] == f"📋 Your work orders:\n{case.number} · Exposed garbage · handle by {due}"
    assert button_texts(listing) == [f"📸 Complete {case.number}", "↩️ Return"]
    await w.press(listing, button(listing, "wt:c:"))
    [*_, prompt] = await w.wait_inbox(3)
    assert prompt["text"] == f"Case {case.number}: send 1 to 3 photos of the finished work."


async def test_a_chinese_speaking_worker_reads_the_order_in_chinese(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9061, locale="zh_CN")
    li = emulator.user(9061, first_name="李", language_code="zh-hans")
    case = await asyncio.to_thread(report, world.ctx, description="门口垃圾堆积")
    [order] = await li.wait_inbox(1)
    assert order["text"].startswith(f"🆕 新工单 {case.number}\n类别：暴露垃圾\n部门：绿化和市容管理局\n"
                                    "网格：南京东路街道第1网格\n")
    assert "描述：门口垃圾堆积" in order["text"] and "报告人：匿名" in order["text"]
    assert button_texts(order) == ["✅ 接单", "↩️ 退单", "🧭 导航"]
