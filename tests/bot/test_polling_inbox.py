"""Long polling through the durable inbox (bot/polling.py): no update is confirmed before it is stored.

The attack of issue 13 item 1, as it was run: a real `onegrid serve` polling the Bot API emulator,
a write lock held on its store (SQLite: the whole store; PostgreSQL: the notification table, so the
update is stored and its handler waits), /start sent, the process killed with SIGKILL while it
waits; after the restart the resident is greeted, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import func, select

from bot.emulator import BotApiEmulator
from models.api import InboxMessage
from models.tables import Notification
from tests.api.test_serve import free_port

CMD = [sys.executable, "-m", "onegrid.cli", "serve"]


def serve_env(emulator: BotApiEmulator, data_dir: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEGRID_")}
    env.update(ONEGRID_DATA_DIR=str(data_dir), ONEGRID_API_PORT=str(free_port()), ONEGRID_BOT_TOKEN=emulator.token,
               ONEGRID_TELEGRAM_API_URL=emulator.base_url, ONEGRID_DATABASE_URL=db_url,
               ONEGRID_DELIVERY_POLL_INTERVAL_S="0.05", ONEGRID_INBOX_LEASE_S="2")
    return env


async def start_serve(env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("ab") as out:
        return await asyncio.create_subprocess_exec(*CMD, env=env, stdout=out, stderr=out)


def polls_after(emulator: BotApiEmulator, seen: int) -> bool:
    return any(c.method == "getUpdates" for c in emulator.requests[seen:])


def returned(emulator: BotApiEmulator, update_id: int) -> bool:
    return any(c.status == 200 and any(u.get("update_id") == update_id for u in c.result or [])
               for c in emulator.calls("getUpdates"))


def inbox_states(db, update_id: int) -> list[str]:
    with db.sessions() as s:
        return list(s.exec(select(InboxMessage.state).where(InboxMessage.dedup_key == str(update_id))))


def greetings(db, chat_id: int) -> int:
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(Notification).where(Notification.chat_id == chat_id)).one()


class StoreLock:
    """SQLite: the store's write lock (storing the update waits). PostgreSQL: the notification table
    only, so the update is stored and its handler waits to queue the greeting."""

    def __init__(self, db) -> None:
        self.db = db

    def __enter__(self) -> StoreLock:
        if self.db.kind == "sqlite":
            self.conn = sqlite3.connect(sa.engine.make_url(self.db.url).database, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn = self.db.engine.connect()
            self.tx = self.conn.begin()
            self.conn.execute(sa.text("LOCK TABLE notification IN EXCLUSIVE MODE"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.db.kind == "sqlite":
            self.conn.rollback()
        else:
            self.tx.rollback()
        self.conn.close()


@pytest.mark.slow
async def test_an_update_survives_kill_9_while_it_waits_for_the_store(db, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    async with BotApiEmulator(limits=True) as emulator:
        env = serve_env(emulator, tmp_path / "var", db.url)
        first = await start_serve(env, log_path)
        try:
            await emulator.wait_for(lambda: polls_after(emulator, 0), timeout=60)  # started and polling
            with StoreLock(db):
                ann = emulator.user(4501, first_name="Ann", language_code="en")
                update = await ann.send_command("/start")
                await emulator.wait_for(lambda: returned(emulator, update["update_id"]), timeout=30)
                if db.kind == "postgresql":  # stored, and its handler is waiting for the lock
                    await emulator.wait_for(lambda: inbox_states(db, update["update_id"]) == ["processing"],
                                            timeout=30)
                first.kill()  # SIGKILL while the update waits for the store
                await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        assert emulator.sent(4501) == [] and greetings(db, 4501) == 0

        seen = len(emulator.requests)
        second = await start_serve(env, log_path)
        try:
            await emulator.wait_for(lambda: polls_after(emulator, seen), timeout=60)
            [greeting] = await ann.wait_inbox(1, timeout=30)
            assert greeting["text"].startswith("Hello, Ann!"), log_path.read_text()
            await emulator.wait_for(lambda: inbox_states(db, update["update_id"]) == ["done"], timeout=30)
            assert greetings(db, 4501) == 1 and len(emulator.sent(4501)) == 1
        finally:
            second.kill()
            await second.wait()


async def test_409_conflict_is_logged_and_polling_resumes(onegrid, emulator: BotApiEmulator, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bot.polling")
    # Someone sets a webhook for our token: getUpdates answers 409 Conflict until it is removed.
    status, _ = await emulator.call("setWebhook", {"url": "https://elsewhere.example/hook"})
    assert status == 200
    await emulator.wait_for(lambda: "409 Conflict" in caplog.text, timeout=10)
    assert "webhook" in caplog.text and "another process" in caplog.text.lower()
    await emulator.call("deleteWebhook", {})
    bob = emulator.user(4502, first_name="Bob", language_code="en")
    await bob.send_command("/start")
    [greeting] = await bob.wait_inbox(1, timeout=15)
    assert greeting["text"].startswith("Hello, Bob!")
