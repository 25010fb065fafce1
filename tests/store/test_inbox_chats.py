"""One chat's updates in order across processes (services/inbox.py `_claim`), on SQLite and PostgreSQL.

Two processors, each on its own engine (two processes on one store), take from one inbox at once;
every chat's updates must be handled one after another, in update order, while different chats
run in parallel. Plus: whose update it is (services/telegram_webhook.py `chat_key`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlmodel import select

from models.api import InboxMessage
from services.context import ServiceContext
from services.db import make_engine, make_session_factory
from services.inbox import InboxProcessor, InboxTicket
from services.telegram_webhook import chat_key, store_updates

CHATS, PER_CHAT = 12, 6


def update(update_id: int, chat: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 0, "text": f"u{update_id}",
                                                "chat": {"id": chat, "type": "private"},
                                                "from": {"id": chat, "is_bot": False, "first_name": "A"}}}


def test_whose_update_it_is() -> None:
    assert chat_key(update(1, 42)) == "42"
    press = {"update_id": 2, "callback_query": {"id": "q", "from": {"id": 7}, "data": "x",
                                                "message": {"message_id": 1, "chat": {"id": -100}}}}
    assert chat_key(press) == "-100"
    assert chat_key({"update_id": 3, "inline_query": {"id": "i", "from": {"id": 9}, "query": ""}}) == "9"
    assert chat_key({"update_id": 4, "poll_answer": {"poll_id": "p", "user": {"id": 5}, "option_ids": []}}) == "5"
    assert chat_key({"update_id": 5, "poll": {"id": "p"}}) is None


async def test_two_processes_handle_each_chat_in_order_one_at_a_time(db, clock) -> None:
    ctx = ServiceContext(sessions=db.sessions, clock=clock)
    # Interleaved as they would arrive: update 1 of every chat, then update 2 of every chat, ...
    ids = iter(range(1, CHATS * PER_CHAT + 1))
    batch = [update(next(ids), 1000 + chat) for _ in range(PER_CHAT) for chat in range(CHATS)]
    store_updates(ctx, batch)
    engines = [make_engine(db.url) for _ in range(2)]
    handled: list[tuple[str, int, str, float, float]] = []  # chat, update_id, processor, start, end

    def processor(engine) -> InboxProcessor:  # noqa: ANN001
        own = ServiceContext(sessions=make_session_factory(engine), clock=clock)
        proc: InboxProcessor

        async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
            start = time.monotonic()
            await asyncio.sleep(0.01)  # long enough for the other process to try the same chat
            handled.append((str(payload["message"]["chat"]["id"]), payload["update_id"], proc.holder, start,
                            time.monotonic()))

        proc = InboxProcessor(own, {"telegram": handle}, concurrency={"telegram": 8})
        return proc

    try:
        procs = [processor(e) for e in engines]

        async def drain(proc: InboxProcessor) -> None:
            for _ in range(200):
                await proc.run_once()
                with db.sessions() as s:
                    if not s.exec(select(InboxMessage.id).where(InboxMessage.state != "done")).first():
                        return
                await asyncio.sleep(0.005)

        await asyncio.gather(*(drain(p) for p in procs))
    finally:
        for e in engines:
            e.dispose()

    assert len(handled) == CHATS * PER_CHAT  # each update once
    by_chat: dict[str, list[tuple[str, int, str, float, float]]] = {}
    for item in handled:
        by_chat.setdefault(item[0], []).append(item)
    for chat, items in by_chat.items():
        items.sort(key=lambda i: i[3])  # by when it started
        assert [i[1] for i in items] == sorted(i[1] for i in items), f"chat {chat} out of order"
        for before, after in zip(items, items[1:], strict=False):
            if before[2] != after[2]:  # moved to the other process: only after the earlier one finished
                assert after[3] >= before[4], f"chat {chat} in two processes at once"
    assert len({i[2] for i in handled}) == 2  # both processes took part


async def test_an_update_waiting_for_a_retry_holds_back_only_its_own_chat(db, clock) -> None:
    ctx = ServiceContext(sessions=db.sessions, clock=clock)
    store_updates(ctx, [update(1, 10), update(2, 20)])
    seen: list[int] = []

    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        if payload["update_id"] == 1 and ticket.attempts == 1:
            raise RuntimeError("the store blinked")
        seen.append(payload["update_id"])

    proc = InboxProcessor(ctx, {"telegram": handle}, concurrency={"telegram": 10})
    await proc.run_once()
    assert seen == [2]
    store_updates(ctx, [update(3, 10), update(4, 20)])
    await proc.run_once()
    assert seen == [2, 4]  # chat 20 goes on; chat 10's next update waits for its first one's retry
    clock.advance(seconds=5)  # the retry's backoff
    await proc.run_once()
    assert seen == [2, 4, 1, 3]
