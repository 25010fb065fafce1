"""Spot checks through the real bot and the loopback Bot API: the request, the answer, and the
worker's other flows left alone."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlmodel import select

from models.supervision import SpotCheck, SpotCheckStatus
from services import spot_checks
from bot.renderers.work_text import local_time
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    GRID,
    add_supervisor,
    add_worker,
    answer_to,
    area_name,
    button,
    emulator,
    offset,
    picture,
    point_in,
    report,
    world,
)

WORKER, BOSS = 9501, 9502
MONDAY = date(2026, 11, 23)


def spot_settings(world, **changes) -> None:  # noqa: ANN001
    world.ctx.settings = world.ctx.settings.model_copy(update={"spot_check_seed": "bot", "spot_check_sample": 1,
                                                               "spot_check_answer_minutes": 30, **changes})


async def start_round(world, clock):  # noqa: ANN001, ANN201
    """Move the clock to Monday's round and run the scheduled job once; the round's time."""
    [plan] = await asyncio.to_thread(spot_checks.plan_day, world.ctx, MONDAY)
    clock.set(plan.due_at)
    assert await asyncio.to_thread(spot_checks.tick, world.ctx) == 1
    return plan.due_at


def stored(db) -> SpotCheck:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(SpotCheck)).one()


async def reply_to(user, emulator, send) -> str:  # noqa: ANN001
    """Send something and return the text of the bot's next message to `user`."""
    before = len(user.inbox)
    await send()
    await emulator.wait_for(lambda: len(user.inbox) > before, chat_id=user.id)
    return user.inbox[before]["text"]


async def test_worker_answers_with_a_photo_and_a_live_location_and_passes(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), WORKER)
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=GRID, name="Boss Li")
    spot_settings(world)
    worker = emulator.user(WORKER, first_name="Wang", language_code="en")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    asked = await start_round(world, clock)

    [request] = await worker.wait_inbox(1)
    label = f"{area_name(db.sessions, GRID)} ({GRID})"
    due = local_time(asked + timedelta(minutes=30), "Asia/Shanghai")
    assert request["text"].startswith(f"🔍 Spot check of grid {label}\nBy {due} (within 30 min), send from inside "
                                      "the grid:\n1. a photo taken now")
    assert "Share My Live Location" in request["text"]

    clock.advance(minutes=4)
    text = await reply_to(worker, emulator, lambda: worker.send_photo(picture(501)))
    assert text.startswith("📷 Photo received. Now share your live location from inside the grid")
    assert stored(db).photo_at == clock.now()

    lat, lon = offset(*point_in(GRID), north_m=10)
    text = await reply_to(worker, emulator,
                          lambda: worker.send_location(lat, lon, horizontal_accuracy=12, live_period=900))
    assert text == f"✅ Spot check of grid {label} passed. Thank you!"
    check = stored(db)
    assert (check.status, check.live, check.escalated_at) == (SpotCheckStatus.PASSED, True, None)
    assert round(check.lat, 6) == round(lat, 6) and check.photo_path
    await asyncio.to_thread(spot_checks.tick, world.ctx)
    assert boss.inbox == []


async def test_a_worker_completing_an_order_keeps_that_flow(world, emulator, db, clock) -> None:
    """A photo sent while completing a work order goes to the order; after /cancel, to the spot check."""
    add_worker(db.sessions, clock.now(), WORKER)
    spot_settings(world, spot_check_silent_days=1)
    worker = emulator.user(WORKER, first_name="Wang", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)  # Saturday: two days before the round, so the grid is silent
    [order] = await worker.wait_inbox(1)
    await worker.press(order, button(order, "wo:a:"))
    await answer_to(emulator, WORKER)
    await emulator.wait_for(lambda: worker.inbox[0]["text"].startswith("✅ You accepted"))
    await worker.press(worker.inbox[0], button(worker.inbox[0], "wt:c:"))
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith(f"Case {case.number}: send"))

    await start_round(world, clock)
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith("🔍 Spot check of grid"))
    text = await reply_to(worker, emulator, lambda: worker.send_photo(picture(502)))
    assert text.startswith("Photo 1 of 3 received.")  # the work order's proof, not the spot check
    assert stored(db).photo_at is None

    await reply_to(worker, emulator, lambda: worker.send_command("cancel"))
    far = offset(*point_in(GRID), north_m=5000)
    shared: list[dict] = []

    async def share_far() -> None:
        shared.append(await worker.send_location(*far, horizontal_accuracy=10, live_period=900))

    text = await reply_to(worker, emulator, share_far)
    assert text.startswith("📍 This location is outside grid")
    assert "Spot check of grid" in text and "answer by" in text
    check = stored(db)
    assert (check.status, check.location_at, check.location_problem) == (SpotCheckStatus.PENDING, None,
                                                                         "outside_grid")
    text = await reply_to(worker, emulator, lambda: worker.send_photo(picture(503)))
    assert text.startswith("📷 Photo received.")
    # The worker walks into the grid with the live location still running: that counts.
    clock.advance(minutes=3)
    inside = point_in(GRID)
    text = await reply_to(worker, emulator, lambda: worker.edit_live_location(shared[0], *inside,
                                                                              horizontal_accuracy=8))
    assert text.startswith("✅ Spot check of grid") and text.endswith("passed. Thank you!")
    assert stored(db).status == SpotCheckStatus.PASSED
