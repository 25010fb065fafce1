"""The durable inbox (services/inbox.py) on SQLite and PostgreSQL: keys, order, the done mark, the migration."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from models.api import InboxMessage
from models.tables import Notification
from services.context import ServiceContext
from services.db import downgrade, insert_now, make_engine, transaction, upgrade
from services.inbox import InboxProcessor, InboxTicket, LeaseLost, store_message
from services.notify import enqueue_text
from tests.store.test_migrations import empty_url  # noqa: F401  (fixture)


def make_ctx(db, clock) -> ServiceContext:
    return ServiceContext(sessions=db.sessions, clock=clock)


def rows(db, channel: str) -> list[InboxMessage]:
    with db.sessions() as s:
        return list(s.exec(select(InboxMessage).where(InboxMessage.channel == channel).order_by(InboxMessage.id)))


def notes(db) -> list[str]:
    with db.sessions() as s:
        return [n.payload["text"] for n in s.exec(select(Notification).order_by(Notification.id))]


def greet(ctx: ServiceContext, text: str) -> None:
    with transaction(ctx.sessions) as session:
        enqueue_text(session, chat_id=1, text=text, now=ctx.clock.now())


def test_a_message_is_stored_once_per_channel_and_key(db, clock) -> None:
    ctx = make_ctx(db, clock)
    assert store_message(ctx, channel="wecom", key="msg-1", payload={"n": 1}) is True
    assert store_message(ctx, channel="wecom", key="msg-1", payload={"n": 2}) is False
    assert store_message(ctx, channel="telegram", key="1", payload={"update_id": 1}) is True
    [wecom] = rows(db, "wecom")
    assert (wecom.dedup_key, wecom.payload, wecom.state, wecom.seq) == ("msg-1", {"n": 1}, "pending", None)
    assert [r.seq for r in rows(db, "telegram")] == [1]
    with pytest.raises(ValueError):
        store_message(ctx, channel="wecom", key="", payload={})


async def test_each_channel_is_handled_in_its_own_order(db, clock) -> None:
    ctx = make_ctx(db, clock)
    for update_id in (30, 10, 20):  # Telegram: update_id order, whatever the arrival
        store_message(ctx, channel="telegram", key=str(update_id), payload={"update_id": update_id})
    for key in ("zeta", "alpha", "mid"):  # others: arrival order
        store_message(ctx, channel="wecom", key=key, payload={"k": key})
    seen: dict[str, list[Any]] = {"telegram": [], "wecom": []}

    async def tg(payload: dict[str, Any], ticket: InboxTicket) -> None:
        seen["telegram"].append(payload["update_id"])

    async def wc(payload: dict[str, Any], ticket: InboxTicket) -> None:
        seen["wecom"].append(payload["k"])

    processor = InboxProcessor(ctx, {"telegram": tg, "wecom": wc})
    assert await processor.run_once() == 6
    assert seen == {"telegram": [10, 20, 30], "wecom": ["zeta", "alpha", "mid"]}
    assert {r.state for r in rows(db, "telegram") + rows(db, "wecom")} == {"done"}


async def test_done_is_committed_with_the_handlers_reply(db, clock) -> None:
    """The mark rides on the transaction that queues the reply: a failure after it repeats nothing."""
    ctx = make_ctx(db, clock)
    store_message(ctx, channel="wecom", key="a", payload={})
    marked_with_reply: list[str] = []

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        await asyncio.to_thread(greet, ctx, "hello")
        [row] = rows(db, "wecom")
        marked_with_reply.append(row.state)
        raise RuntimeError("rendering failed after the commit")

    processor = InboxProcessor(ctx, {"wecom": handle})
    await processor.run_once()
    clock.advance(hours=1)
    await processor.run_once()  # nothing is due again
    [row] = rows(db, "wecom")
    assert marked_with_reply == ["done"] and notes(db) == ["hello"]
    assert row.state == "done" and row.attempts == 1 and "rendering failed" in row.last_error


async def test_a_reply_written_at_once_also_carries_the_done_mark(db, clock) -> None:
    """A work order the dispatcher writes with insert_now (never pending in the session) counts as a reply."""
    ctx = make_ctx(db, clock)
    store_message(ctx, channel="wecom", key="b", payload={})
    marked_with_reply: list[str] = []

    def order(text: str) -> None:
        with transaction(ctx.sessions) as session:
            insert_now(session, enqueue_text(session, chat_id=1, text=text, now=ctx.clock.now()))

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        await asyncio.to_thread(order, "🆕 work order")
        marked_with_reply.append(rows(db, "wecom")[0].state)
        raise RuntimeError("rendering failed after the commit")

    await InboxProcessor(ctx, {"wecom": handle}).run_once()
    clock.advance(hours=1)
    await InboxProcessor(ctx, {"wecom": handle}).run_once()  # nothing is due again: no second order
    assert marked_with_reply == ["done"] and notes(db) == ["🆕 work order"]


async def test_a_handler_that_fails_before_committing_is_retried_then_kept(db, clock) -> None:
    ctx = make_ctx(db, clock)
    store_message(ctx, channel="wecom", key="bad", payload={})
    calls: list[int] = []

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        calls.append(ticket.attempts)
        raise RuntimeError("boom")

    processor = InboxProcessor(ctx, {"wecom": handle})
    for _ in range(6):
        await processor.run_once()
        clock.advance(minutes=1)
    [row] = rows(db, "wecom")
    assert calls == [1, 2, 3, 4, 5] and row.state == "failed" and "boom" in row.last_error


async def test_a_handler_committing_nothing_is_marked_done_after(db, clock) -> None:
    ctx = make_ctx(db, clock)
    store_message(ctx, channel="wecom", key="quiet", payload={})

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        return None

    await InboxProcessor(ctx, {"wecom": handle}).run_once()
    assert [r.state for r in rows(db, "wecom")] == ["done"]


async def test_a_lost_lease_rolls_the_handlers_transaction_back(db, clock) -> None:
    ctx = make_ctx(db, clock)
    store_message(ctx, channel="wecom", key="slow", payload={})

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        # Meanwhile the lease passed and another worker took the message over.
        with transaction(ctx.sessions) as session:
            session.execute(sa.update(InboxMessage).values(attempts=InboxMessage.attempts + 1))
        with pytest.raises(LeaseLost):
            await asyncio.to_thread(greet, ctx, "twice?")

    await InboxProcessor(ctx, {"wecom": handle}, lease=timedelta(seconds=5)).run_once()
    assert notes(db) == []


async def test_an_explicit_mark_joins_the_handlers_own_transaction(db, clock) -> None:
    ctx = make_ctx(db, clock)
    store_message(ctx, channel="wecom", key="own", payload={})
    states: list[str] = []

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        with transaction(ctx.sessions) as session:
            ticket.mark_done(session)
        states.append(rows(db, "wecom")[0].state)

    await InboxProcessor(ctx, {"wecom": handle}).run_once()
    assert states == ["done"]


def test_the_migration_keeps_stored_telegram_updates(empty_url) -> None:  # noqa: F811
    upgrade(empty_url, "0010")
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO webhook_update (update_id, payload, state, attempts, received_at) "
            "VALUES (7, '{\"update_id\": 7}', 'pending', 0, '2026-12-01 10:00:00+00:00'), "
            "(5, '{\"update_id\": 5}', 'done', 1, '2026-12-01 09:00:00+00:00')"))
    upgrade(empty_url, "head")
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT channel, dedup_key, seq, state FROM inbox_message ORDER BY seq")).all()
    assert [tuple(r) for r in got] == [("telegram", "5", 5, "done"), ("telegram", "7", 7, "pending")]
    downgrade(empty_url, "0010")
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT update_id, state FROM webhook_update ORDER BY update_id")).all()
    assert [tuple(r) for r in back] == [(5, "done"), (7, "pending")]
    engine.dispose()
