"""Field work on WeCom / 政务微信 through the emulator: orders, proof and verification, alone and beside Telegram.

The worker (and in one test the supervisor) uses WeCom; every message they get is compared with the
zh_CN catalogue's wording of the Telegram msgid, so both channels say the same thing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from models.lifecycle import Status
from models.tables import CaseSource
from services.api_keys import authenticate, create_key
from services.intake_machine import MachineReport, intake_event
from tests.worker_support import GRID, STREET, add_person, add_supervisor, answer_to, button, offset, picture, point_in, report
from tests.wecom.support import ZH, act, add_wecom_person, case_status, next_message, until
from wecom.emulator import WecomMember

BOSS = 9302


async def accept_and_prove(world, wecom_emu, clock, member: WecomMember, case, *, seed: int):  # noqa: ANN001, ANN201
    """From the order card to the submitted proof, all on WeCom."""
    order = await next_message(member, 0)
    assert order.msgtype == "template_card"
    assert order.body["template_card"]["main_title"]["title"] == ZH("🆕 Work order {number}").format(number=case.number)
    assert list(order.buttons) == [ZH("✅ Accept"), ZH("↩️ Return to dispatcher")]
    accepted = await act(member, lambda: member.press(order, ZH("✅ Accept")))
    assert accepted.body["template_card"]["main_title"]["title"] == ZH(
        "✅ You accepted work order {number}").format(number=case.number)
    return await prove(member, accepted, case, clock, seed=seed)


async def prove(member: WecomMember, card, case, clock, *, seed: int):  # noqa: ANN001, ANN201
    asked = await act(member, lambda: member.press(card, ZH("📸 Complete")))
    assert asked.body["template_card"]["main_title"]["title"] == ZH(
        "Case {number}: send 1 to {max} photos of the finished work.").format(number=case.number, max=3)
    got = await act(member, lambda: member.send_image(picture(seed)))
    assert got.body["template_card"]["main_title"]["title"] == ZH("Photo {count} of {max} received.").format(
        count=1, max=3)
    prompt = await act(member, lambda: member.press(got, ZH("➡️ Done with photos")))
    assert prompt.text == ZH("Now send your location on site.")
    lat, lon = offset(case.lat, case.lon, north_m=15)
    receipt = await act(member, lambda: member.send_location(lat, lon))
    assert receipt.text.startswith(ZH("✅ Proof submitted for case {number}: {distance} m from the case point "
                                      "({kind}).").format(number=case.number, distance=15, kind=ZH("static location")))
    return receipt


async def test_worker_on_wecom_is_verified_by_a_supervisor_on_telegram(world, emulator, wecom_emu, db, clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                     department_code="greening_appearance", name="王伟")
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=STREET, name="Boss Li")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    worker = WecomMember(wecom_emu, "wangwei")
    case = await asyncio.to_thread(report, world.ctx)
    await accept_and_prove(world, wecom_emu, clock, worker, case, seed=601)
    before = len(worker.inbox)

    [card] = await boss.wait_inbox(1)  # the Telegram supervisor's proof card
    assert card["text"].startswith(f"🔍 Please verify case {case.number}")
    await boss.press(card, button(card, "sv:a:"))
    await answer_to(emulator, BOSS)
    closed = await next_message(worker, before)
    assert closed.text == ZH("✅ Case {number} was verified and closed. Thank you!").format(number=case.number)
    assert case_status(db, case.id) == Status.CLOSED
    assert emulator.sent(BOSS) and not [m for m in wecom_emu.inbox("wangwei") if "🔍" in m.text]


async def test_order_proof_reject_and_approve_all_on_wecom(world, wecom_emu, db, clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                     department_code="greening_appearance", name="王伟")
    add_wecom_person(db.sessions, clock.now(), "lijun", roles=["supervisor"], area_code=STREET, name="李军")
    worker, boss = WecomMember(wecom_emu, "wangwei"), WecomMember(wecom_emu, "lijun")
    case = await asyncio.to_thread(report, world.ctx, description="Garbage by the gate, call 13812345678")
    await accept_and_prove(world, wecom_emu, clock, worker, case, seed=611)

    card = await next_message(boss, 0)
    assert card.body["template_card"]["main_title"]["title"] == ZH("🔍 Please verify case {number}").format(
        number=case.number)
    assert "call 138****5678" in card.text and "13812345678" not in card.text  # masked, as on Telegram
    assert list(card.buttons) == [ZH("✅ Approve and close"), ZH("🔁 Reject: rework")]
    photo = await next_message(boss, 1)
    assert photo.msgtype == "image" and photo.image  # the proof photo, uploaded through media/upload

    asked = await act(boss, lambda: boss.press(card, ZH("🔁 Reject: rework")))
    assert asked.text.startswith(ZH("What must be redone? Send the reason in one message; the worker will see it."))
    before = len(worker.inbox)
    confirm = await act(boss, lambda: boss.send_text("垃圾桶旁还有垃圾"))
    assert confirm.text == ZH("Case {number} sent back for rework; the worker was told why.").format(number=case.number)
    rework = await next_message(worker, before)
    assert rework.body["template_card"]["main_title"]["title"] == ZH(
        "🔁 Rework: case {number} was not accepted by the supervisor.").format(number=case.number)
    assert "垃圾桶旁还有垃圾" in rework.text
    assert case_status(db, case.id) == Status.REWORK

    clock.advance(minutes=5)
    before_boss = len(boss.inbox)
    await prove(worker, rework, case, clock, seed=612)
    second = await next_message(boss, before_boss)
    await until(lambda: len(boss.inbox) >= before_boss + 2)  # the card and its photo
    before_worker = len(worker.inbox)
    approved = await act(boss, lambda: boss.press(second, ZH("✅ Approve and close")))
    assert approved.text.startswith(ZH("✅ Case {number} approved and closed by {name} ({at}).").split("{")[0])
    closed = await next_message(worker, before_worker)
    assert closed.text == ZH("✅ Case {number} was verified and closed. Thank you!").format(number=case.number)
    assert case_status(db, case.id) == Status.CLOSED

    # A press on the first, outdated card changes nothing and says so.
    stale = await act(boss, lambda: boss.press(card, ZH("✅ Approve and close")))
    assert stale.text.startswith(ZH("This card is out of date: case {number} is now {status}.").split("{")[0])


async def test_a_worker_on_wecom_returns_an_order_with_a_reason(world, wecom_emu, db, clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    case = await asyncio.to_thread(report, world.ctx)
    order = await next_message(worker, 0)
    asked = await act(worker, lambda: worker.press(order, ZH("↩️ Return to dispatcher")))
    assert asked.text.startswith(ZH("Why are you returning this work order to the dispatcher? "
                                    "Send the reason in one message."))
    assert list(asked.buttons) == [ZH("Cancel")]
    thanks = await act(worker, lambda: worker.send_text("不属于我部门"))
    assert thanks.text == ZH("Returned: work order {number} goes back to the dispatcher. Thank you for "
                             "saying why.").format(number=case.number)
    # The order card's Accept now refuses, in the catalogue's words.
    clock.advance(seconds=1)
    refused = await act(worker, lambda: worker.press(order, ZH("✅ Accept")))
    assert refused.text == ZH("Work order {number} is no longer offered to you.").format(number=case.number)


async def test_escalation_pings_reach_staff_on_wecom_in_the_same_words(world, wecom_emu, db, clock) -> None:
    from services import escalation  # noqa: PLC0415

    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    case = await asyncio.to_thread(report, world.ctx)
    await next_message(worker, 0)  # the order, left unanswered
    before = len(worker.inbox)
    clock.set(case.accept_due_at + timedelta(seconds=1))
    assert (await asyncio.to_thread(escalation.sweep, world.ctx)).fired == 1
    ping = await next_message(worker, before)
    assert ping.text.startswith(ZH("⏰ Case {number}: not accepted in time").format(number=case.number))


async def test_a_drill_order_on_wecom_is_labelled_masked_and_links_to_the_place_and_the_snapshot(
        world, wecom_emu, db, clock) -> None:
    """What the Telegram order shows, the WeCom card shows too: the drill label on every message about the
    case, the caller's phone number masked, a tap to navigate (Amap) and the camera snapshot's link."""
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    _key, token = create_key(world.ctx, name="camera gateway", scopes=["intake"])
    lat, lon = point_in(GRID)
    snapshot = "https://cameras.example/snap/7.jpg"  # not an allowed snapshot host: shown as a link
    result = await asyncio.to_thread(intake_event, world.ctx, principal=authenticate(world.ctx, token=token),
                                     report=MachineReport(
        source=CaseSource.CAMERA, event_id="drill-7", device_id="cam-7", category_code="exposed_garbage",
        lat=lat, lon=lon, description="Caller 13812345678 says garbage", media_urls=[snapshot], drill=True))
    number = result.case.number

    order = await next_message(worker, 0)
    assert order.body["template_card"]["main_title"]["title"] == "🧪 【演练】 " + ZH("🆕 Work order {number}").format(
        number=number)
    assert "13812345678" not in order.text and "Caller 138****5678 says garbage" in order.text
    assert ZH("Source: {source}").format(source=ZH("camera")) in order.text
    links = order.links
    assert links[ZH("📷 Camera snapshot · {number}").format(number=1)] == snapshot
    navigate = links[ZH("🧭 Navigate")]
    assert navigate.startswith("https://uri.amap.com/marker?position=") and f"{lon:.6f},{lat:.6f}" in navigate

    accepted = await act(worker, lambda: worker.press(order, ZH("✅ Accept")))
    assert accepted.body["template_card"]["main_title"]["title"] == "🧪 【演练】 " + ZH(
        "✅ You accepted work order {number}").format(number=number)
    # A case that is no drill carries no label.
    plain = await asyncio.to_thread(report, world.ctx)
    other = await until(lambda: next((m for m in worker.inbox if m.task_id and plain.number in m.text), None))
    assert other.body["template_card"]["main_title"]["title"] == ZH("🆕 Work order {number}").format(
        number=plain.number)


async def test_progress_notes_on_wecom_reach_the_record_and_a_supervisor_on_wecom(world, wecom_emu, db, clock) -> None:
    """📝 Progress note on the held order: a quick note, the worker's own words (an empty one is asked again,
    Cancel posts nothing), and "needs another department", which the street's supervisor on WeCom is sent."""
    from models.field import ProgressNote  # noqa: PLC0415
    from sqlmodel import select  # noqa: PLC0415

    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                     department_code="greening_appearance", name="王伟")
    add_wecom_person(db.sessions, clock.now(), "lijun", roles=["supervisor"], area_code=STREET, name="李军")
    worker, boss = WecomMember(wecom_emu, "wangwei"), WecomMember(wecom_emu, "lijun")
    resident = add_person(db.sessions, clock.now(), telegram_user_id=9390, roles=[], name="李华", phone="13800000001")
    case = await asyncio.to_thread(report, world.ctx, description="Call 13812345678 at the gate", reporter_id=resident)
    order = await next_message(worker, 0)
    # Staff never see a reporter's name, not even a surname: the masked phone (as on Telegram).
    assert ZH("Reporter: {reporter}").format(reporter=ZH("resident {phone}").format(phone="138****0001")) in order.text
    assert "李" not in order.text
    accepted = await act(worker, lambda: worker.press(order, ZH("✅ Accept")))
    assert list(accepted.buttons) == [ZH("📸 Complete"), ZH("↩️ Return to dispatcher"), ZH("📝 Progress note")]

    notes = await act(worker, lambda: worker.press(accepted, ZH("📝 Progress note")))
    assert notes.text == ZH("How is it going? Choose a note, or write one.")
    assert list(notes.buttons) == [ZH("📍 Arrived"), ZH("⏳ Waiting for materials"), ZH("🏢 Needs another department"),
                                   ZH("✏️ Write a note")]
    arrived = await act(worker, lambda: worker.press(notes, ZH("📍 Arrived")))
    assert arrived.text == ZH("📝 Progress noted on case {number}: {label}.").format(number=case.number,
                                                                                    label=ZH("arrived on site"))
    clock.advance(seconds=1)
    asked = await act(worker, lambda: worker.press(notes, ZH("✏️ Write a note")))
    assert asked.text == ZH("Write your progress note in one message.")
    again = await act(worker, lambda: worker.send_text("   "))
    assert again.text == ZH("Please write the note in a few words, or press Cancel.")
    noted = await act(worker, lambda: worker.send_text("配件明天到"))
    assert noted.text == ZH("📝 Progress noted on case {number}: {label}.").format(number=case.number, label=ZH("note"))
    clock.advance(seconds=1)
    await act(worker, lambda: worker.press(notes, ZH("✏️ Write a note")))
    cancelled = await act(worker, lambda: worker.press(asked, ZH("Cancel")))
    assert cancelled.text == ZH("Cancelled: no note was posted.")

    clock.advance(seconds=1)
    await act(worker, lambda: worker.press(notes, ZH("🏢 Needs another department")))
    told = await next_message(boss, 0)
    assert told.text.startswith(ZH("🏢 Case {number}: {worker} says another department is needed").format(
        number=case.number, worker="王伟"))
    assert ZH("Progress:") in told.text and "配件明天到" in told.text and "13812345678" not in told.text
    with db.sessions() as s:
        kinds = [(n.kind, n.text) for n in s.exec(select(ProgressNote).order_by(ProgressNote.id)).all()]
    assert kinds == [("arrived", None), ("text", "配件明天到"), ("needs_department", None)]
