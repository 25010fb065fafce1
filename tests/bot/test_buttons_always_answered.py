"""Every button press gets an answer (issue 13, items 11 and 13).

A forged or stale button from the wrong role, or a press while the wall clock has stepped back,
must never leave the spinner turning: the person gets an answer, and nothing changes that should not.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case, CaseEvent
from tests.bot.forged import forge_press
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    add_person,
    add_worker,
    answer_to,
    button,
    emulator,
    report,
    world,
)

REFUSED = "This button is not available to you, or it has expired."


async def test_a_residents_forged_worker_button_is_answered_with_a_refusal(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9601)
    add_person(db.sessions, clock.now(), telegram_user_id=9602, roles=["resident"])
    worker = emulator.user(9601, first_name="Wu", language_code="en")
    resident = emulator.user(9602, first_name="Ren", language_code="en")
    stranger = emulator.user(9603, first_name="Nobody", language_code="zh")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await worker.wait_inbox(1)
    accept = button(order, "wo:a:")

    await resident.send_command("/start")
    [greeting] = await resident.wait_inbox(1)
    forge_press(emulator, resident, greeting, accept)  # the worker's Accept, sent by a resident's client
    [answer] = await answer_to(emulator, 9602)
    assert (answer["text"], answer["show_alert"]) == (REFUSED, True)

    await stranger.send_command("/start")
    [hello] = await stranger.wait_inbox(1)
    forge_press(emulator, stranger, hello, f"sv:a:{case.id}:1")  # a supervisor's Approve from someone unknown
    [answer] = await answer_to(emulator, 9603)
    assert answer["text"] == "此按钮对您不可用，或已过期。"

    with db.sessions() as s:
        stored = s.get(Case, case.id)
    assert (stored.status, stored.handler_id) == (Status.DISPATCHED, None)


async def test_accept_is_answered_when_the_wall_clock_stepped_back(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9611)
    worker = emulator.user(9611, first_name="Lin", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await worker.wait_inbox(1)
    with db.sessions() as s:
        last_event = s.get(Case, case.id).updated_at
    clock.set(clock.now() - timedelta(minutes=10))  # NTP, a VM restore: the wall clock steps back

    await worker.press(order, button(order, "wo:a:"))

    [answer] = await answer_to(emulator, 9611)
    assert answer["text"] == f"Accepted: case {case.number} is yours."
    with db.sessions() as s:
        stored = s.get(Case, case.id)
        times = [e.at for e in s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                      .order_by(CaseEvent.id)).all()]
    assert stored.status == Status.IN_PROGRESS
    assert times == sorted(times) and times[-1] == last_event  # stamped at the last event's time, not before it
