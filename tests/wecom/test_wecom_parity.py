"""One core, any messenger: the same work done on Telegram or on WeCom leaves the same case events."""

from __future__ import annotations

import asyncio

import pytest

from models.lifecycle import Status
from tests.wecom.support import ZH, act, add_wecom_person, case_events, case_status, next_message
from tests.worker_support import STREET, add_supervisor, add_worker, answer_to, button, offset, picture, report
from wecom.emulator import WecomMember

WORKER, BOSS = 9501, 9502


async def telegram_worker_does_the_work(world, emulator, db, clock, case) -> None:  # noqa: ANN001
    worker = emulator.user(WORKER, first_name="Wang", language_code="en")
    [order] = await worker.wait_inbox(1)  # one message: the order and its buttons
    await worker.press(order, button(order, "wo:a:"))
    await emulator.wait_for(lambda: worker.inbox[0]["text"].startswith("✅ You accepted"))
    await worker.press(worker.inbox[0], button(worker.inbox[0], "wt:c:"))
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith(f"Case {case.number}: send"))
    before = len(worker.inbox)
    await worker.send_photo(picture(701))
    await emulator.wait_for(lambda: len(worker.inbox) > before)  # the receipt asks for the location
    before = len(worker.inbox)
    await worker.send_location(*offset(case.lat, case.lon, north_m=15))
    await emulator.wait_for(lambda: len(worker.inbox) > before and worker.inbox[-1]["text"].startswith("✅ Proof"))


async def wecom_worker_does_the_work(world, wecom_emu, clock, case) -> None:  # noqa: ANN001
    worker = WecomMember(wecom_emu, "wangwei")
    order = await next_message(worker, 0)
    accepted = await act(worker, lambda: worker.press(order, ZH("✅ Accept")))
    asked = await act(worker, lambda: worker.press(accepted, ZH("📸 Complete")))
    assert asked.buttons  # the photo step card
    got = await act(worker, lambda: worker.send_image(picture(701)))
    await act(worker, lambda: worker.press(got, ZH("➡️ Done with photos")))
    receipt = await act(worker, lambda: worker.send_location(*offset(case.lat, case.lon, north_m=15)))
    assert receipt.text.startswith(ZH("✅ Proof submitted for case {number}: {distance} m from the case point "
                                      "({kind}).").split("{")[0])


@pytest.mark.parametrize("channel", ["telegram", "wecom"])
async def test_the_same_work_leaves_the_same_case_events_on_either_channel(channel, world, emulator, wecom_emu, db,
                                                                          clock) -> None:
    if channel == "telegram":
        add_worker(db.sessions, clock.now(), WORKER, name="Wang Wei")
    else:
        add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code="SH-HP-01-001",
                         department_code="greening_appearance", name="Wang Wei")
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=STREET, name="Boss Li")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    if channel == "telegram":
        await telegram_worker_does_the_work(world, emulator, db, clock, case)
    else:
        await wecom_worker_does_the_work(world, wecom_emu, clock, case)
    [card] = await boss.wait_inbox(1)
    await boss.press(card, button(card, "sv:a:"))
    await answer_to(emulator, BOSS)
    await emulator.wait_for(lambda: case_status(db, case.id) == Status.CLOSED)

    assert case_events(db, case.id) == [
        ("report", None, "reported", "system"),
        ("register", "reported", "registered", "system"),
        ("dispatch", "registered", "dispatched", "system"),
        ("accept", "dispatched", "in_progress", "worker"),
        ("complete", "in_progress", "awaiting_verification", "worker"),
        ("approve", "awaiting_verification", "closed", "supervisor"),
    ]
