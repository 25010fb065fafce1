"""Escalation pings, their buttons, /stats and /verify through the real bot (emulator, fake clock)."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import timedelta

from models.lifecycle import Status
from models.tables import Case
from services import escalation
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    GRID,
    STREET,
    add_supervisor,
    add_worker,
    answer_to,
    button,
    emulator,
    report,
    settle,
    world,
)
from bot.emulator.users import _chat_instance

_forged = itertools.count(1)
WORKER, BOSS, FOREIGN = 9401, 9402, 9403


def row(db, case_id: int) -> Case:  # noqa: ANN001
    with db.sessions() as s:
        return s.get(Case, case_id)


async def overdue_ping(world, emulator, db, clock):  # noqa: ANN001, ANN201
    add_worker(db.sessions, clock.now(), WORKER)
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=STREET, name="Boss Li")
    add_supervisor(db.sessions, clock.now(), FOREIGN, area_code="SH-HP-02", name="Boss Zhao")
    worker = emulator.user(WORKER, first_name="Wang", language_code="en")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    await worker.wait_inbox(1)
    clock.set(row(db, case.id).accept_due_at + timedelta(minutes=16))
    result = await asyncio.to_thread(escalation.sweep, world.ctx)
    assert result.fired == 2  # the worker's reminder, then the grid level (nobody there: the street's Boss Li)
    await emulator.wait_for(lambda: any("not accepted in time" in m.get("text", "") for m in boss.inbox))
    ping = next(m for m in boss.inbox if "not accepted in time" in m.get("text", ""))
    return worker, boss, case, ping


async def test_ping_card_and_acknowledge(world, emulator, db, clock) -> None:
    worker, boss, case, ping = await overdue_ping(world, emulator, db, clock)
    assert f"Case {case.number}: not accepted in time" in ping["text"]
    assert "late by 16 min" in ping["text"] and "Offered to:" in ping["text"] and "History:" in ping["text"]
    settle(clock)
    await emulator.wait_for(lambda: any("/extend" in m.get("text", "") for m in worker.inbox))
    await boss.press(ping, button(ping, "ep:a:"))
    [answer] = await answer_to(emulator, BOSS)
    assert answer["text"] == f"Acknowledged: no more reminders about case {case.number}."
    clock.advance(hours=3)
    assert (await asyncio.to_thread(escalation.sweep, world.ctx)).repeated == 0


async def test_take_over_from_the_ping(world, emulator, db, clock) -> None:
    _worker, boss, case, ping = await overdue_ping(world, emulator, db, clock)
    await boss.press(ping, button(ping, "ep:t:"))
    [answer] = await answer_to(emulator, BOSS)
    assert answer["text"] == f"You now hold case {case.number}."
    assert row(db, case.id).status == Status.IN_PROGRESS and row(db, case.id).handler_id is not None


async def test_replayed_button_of_another_streets_case_is_refused(world, emulator, db, clock) -> None:
    _worker, _boss, case, ping = await overdue_ping(world, emulator, db, clock)
    foreign = emulator.user(FOREIGN, first_name="Zhao", language_code="en")
    await foreign.send_command("verify")
    await foreign.wait_inbox(1)
    before = row(db, case.id)
    data = button(ping, "ep:t:")
    stored = emulator.store.get(FOREIGN, foreign.inbox[0]["message_id"])
    query_id = f"forged-sv{next(_forged)}"
    emulator.callback_queries[query_id] = {"user_id": FOREIGN, "data": data, "chat_id": FOREIGN,
                                           "message_id": stored["message_id"], "answered": False}
    emulator.queue_update("callback_query", {"id": query_id, "from": foreign.as_user(),
                                             "message": copy.deepcopy(stored),
                                             "chat_instance": _chat_instance(FOREIGN), "data": data})
    [answer] = await answer_to(emulator, FOREIGN)
    assert answer["text"] == "This case is outside your area." and answer["show_alert"] is True
    after = row(db, case.id)
    assert (after.version, after.status, after.handler_id) == (before.version, before.status, before.handler_id)


async def test_stats_with_period_switch_and_empty_verify_queue(world, emulator, db, clock) -> None:
    _worker, boss, case, _ping = await overdue_ping(world, emulator, db, clock)
    await boss.send_command("verify")
    await emulator.wait_for(lambda: any(m.get("text") == "Nothing awaits verification in your area."
                                        for m in boss.inbox))
    settle(clock)
    await boss.send_command("stats")
    await emulator.wait_for(lambda: any(m.get("text", "").startswith("📊") for m in boss.inbox))
    stats = next(m for m in boss.inbox if m.get("text", "").startswith("📊"))
    assert "SH-HP-01, the last 7 days" in stats["text"] and "Registered: 1" in stats["text"]
    settle(clock)
    await boss.press(stats, button(stats, "et:today"))
    await emulator.wait_for(lambda: any("SH-HP-01, today" in m.get("text", "") for m in boss.inbox))
