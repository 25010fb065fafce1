"""Sustained delivery rate through the real sender and aiogram Bot against the emulator with limits on.

    python bench/delivery.py [--messages 900] [--chats 300] [--database-url URL]

Prints messages/s over the whole run, the 429s the emulator had to give, and how long
messages waited in the queue (p50/p99). Figures go to docs/BENCHMARKS.md; nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.delivery import NotificationSender  # noqa: E402
from bot.emulator import BotApiEmulator  # noqa: E402
from bot.factory import create_bot  # noqa: E402
from onegrid.clock import SystemClock  # noqa: E402
from services.db import make_engine, make_session_factory, transaction, upgrade  # noqa: E402
from services.notify import enqueue_text  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=900)
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="onegrid-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    clock = SystemClock()
    with transaction(sessions) as s:
        for i in range(args.messages):
            chat = 1_000_000 + i % args.chats
            enqueue_text(s, chat_id=chat, text=f"bench {i}", now=clock.now())

    async with BotApiEmulator(limits=True) as emu:
        bot = create_bot(emu.token, api_url=emu.base_url)
        sender = NotificationSender(bot=bot, sessions=sessions, clock=clock, data_dir=tmp)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(sender.run(stop, poll_interval=0.05))
        await emu.wait_for(lambda: sender.stats.sent >= args.messages, timeout=args.messages / 10 + 60)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        await bot.session.close()
        limited = emu.stats["429"]

    from sqlmodel import select

    from models.tables import Notification

    with sessions() as s:
        rows = s.exec(select(Notification)).all()
        waits = sorted((n.sent_at - n.created_at).total_seconds() for n in rows)
        sent_times = sorted(n.sent_at for n in rows)
    span = (sent_times[-1] - sent_times[0]).total_seconds()
    engine.dispose()
    print(f"database           {engine.dialect.name}")
    print(f"messages           {args.messages} to {args.chats} chats")
    print(f"elapsed            {elapsed:.2f} s")
    print(f"overall rate       {args.messages / elapsed:.2f} messages/s (start-up included)")
    print(f"sustained rate     {(args.messages - 1) / span:.2f} messages/s (first to last delivery)")
    print(f"429 from emulator  {limited}")
    print(f"queue wait p50     {statistics.median(waits):.2f} s (all queued at once)")
    print(f"queue wait p99     {waits[int(len(waits) * 0.99) - 1]:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
