"""Menus only when they change: a restart of the whole app queues no staff menu that is already set."""

from __future__ import annotations

from sqlmodel import func, select

from models.tables import Notification
from onegrid.app import build, start_background, stop_background
from tests.bot.conftest import harness_settings
from tests.worker_support import STREET, add_supervisor, add_worker

STAFF = {9801, 9802}


def chat_menus(emulator) -> list:  # noqa: ANN001
    return [c for c in emulator.calls("setMyCommands")
            if c.ok and (c.params.get("scope") or {}).get("chat_id") in STAFF]


def queued_menus(db) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(Notification).where(
            Notification.method == "setMyCommands")).one()


async def test_a_restart_queues_no_menu_that_has_not_changed(db, clock, emulator, tmp_path) -> None:
    add_worker(db.sessions, clock.now(), 9801)
    add_supervisor(db.sessions, clock.now(), 9802, area_code=STREET, name="Boss Qian")

    first = build(harness_settings(db.url, emulator, tmp_path), clock=clock)
    await start_background(first, polling_timeout=1)
    try:
        await emulator.wait_for(lambda: len(chat_menus(emulator)) == 2, timeout=20)  # a first start: both set
    finally:
        await stop_background(first)
        first.engine.dispose()
    assert queued_menus(db) == 2

    polls = len(emulator.calls("getUpdates"))
    second = build(harness_settings(db.url, emulator, tmp_path), clock=clock)  # the restart (a deploy)
    await start_background(second, polling_timeout=1)
    try:
        # Polling starts after the startup hooks, which is where menus are queued.
        await emulator.wait_for(lambda: len(emulator.calls("getUpdates")) > polls, timeout=20)
    finally:
        await stop_background(second)
        second.engine.dispose()
    assert queued_menus(db) == 2
    assert len(chat_menus(emulator)) == 2
