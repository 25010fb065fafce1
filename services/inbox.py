"""The durable inbox: every inbound message (a Telegram update, a WeCom callback) is stored before it is
confirmed to its platform, then handled once per (channel, dedup_key), in arrival order per channel.

What callers may rely on:
- `store_message` commits the raw message before returning; a redelivery of the same
  (channel, key) stores nothing new and returns False.
- `InboxProcessor` hands stored messages to the channel's handler, started oldest first per channel
  (Telegram in update_id order, other channels in the order they were stored), one at a time unless
  the channel is given more concurrency. One chat's messages (`chat_key`) are in one process at a
  time, in order, whichever of several processes on one store takes them: a message is claimed only
  when every earlier open message of its chat is held by the same processor; a message waiting for
  a retry holds back its chat's later ones. Different chats go in parallel. It picks up after a restart whatever was stored but not
  done (once its lease has passed). A handler that raises
  before committing anything is retried with backoff, then marked failed and kept, so one bad
  message never blocks the rest.
- "Done" is committed together with the handler's effects: the mark rides on the first
  `transaction()` of the handler that queues an outgoing message (a Notification row), or on the
  transaction the handler passes to `ticket.mark_done(session)`. A crash after that commit does
  not run the message again (the user does not get the greeting twice). A handler that commits
  nothing of the kind is marked done right after it returns; a crash in between runs it again.
- Writes a handler commits *before* that transaction (conversation state, a language) may be
  repeated after a crash; writes *after* it are not repeated, so a crash between them and the
  mark is lost. Handlers keep their decisive writes and their reply in one service call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session, func, select

from models.api import InboxMessage
from models.tables import Notification
from models.wecom import WecomMessage
from services.context import ServiceContext
from services.db import INSERTED_NOW, commit_hook, insert_unless_exists, transaction

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 5
# Channels whose keys are integers in the platform's own order (handled in that order).
ORDERED_BY_KEY = frozenset({"telegram"})
# Rows whose creation is a user-visible effect: the transaction adding one carries the "done" mark.
OUTGOING: tuple[type, ...] = (Notification, WecomMessage)  # Telegram's and WeCom's outboxes
_OPEN = ("pending", "processing")


class LeaseLost(RuntimeError):
    """Another worker took the message over (our lease passed): this handler's transaction rolls back."""


def store_message(ctx: ServiceContext, *, channel: str, key: str, payload: dict[str, Any],
                  chat_key: str | None = None) -> bool:
    """Store the message; True when it is new, False for a redelivery of the same (channel, key).

    `chat_key` names whose message it is: one chat's messages are handled one at a time, in order."""
    return store_messages(ctx, channel=channel, messages=[(key, payload)],
                          chat_of=(lambda _payload: chat_key)) == 1


def store_messages(ctx: ServiceContext, *, channel: str, messages: list[tuple[str, dict[str, Any]]],
                   chat_of: Callable[[dict[str, Any]], str | None] | None = None) -> int:
    """Store a batch (key, payload) in one commit, so it is handed over together; returns how many were new."""
    if not channel or len(channel) > 32 or any(not key or len(key) > 255 for key, _ in messages):
        raise ValueError("an inbox message needs a channel (1-32 characters) and a key (1-255 characters)")
    table = InboxMessage.__table__
    now = ctx.clock.now()
    fresh = 0
    with transaction(ctx.sessions) as session:
        for key, payload in messages:
            chat = chat_of(payload) if chat_of is not None else None
            fresh += insert_unless_exists(session, table, dict(
                channel=channel, dedup_key=key, seq=int(key) if channel in ORDERED_BY_KEY else None,
                payload=payload, state="pending", attempts=0, received_at=now,
                chat_key=chat[:64] if chat else None,
            ), unique=["channel", "dedup_key"], returning=table.c.id) is not None
    return fresh


class InboxTicket:
    """The handler's second argument: the message being handled, and its "done" mark.

    `mark_done(session)` adds the mark to the handler's own transaction; `transaction()` calls in
    the handler's context do it by themselves when they queue an outgoing message.
    """

    def __init__(self, ctx: ServiceContext, *, message_id: int, channel: str, key: str, attempts: int) -> None:
        self.ctx, self.message_id, self.channel, self.key, self.attempts = ctx, message_id, channel, key, attempts
        self.committed = False  # a transaction carrying the mark has committed

    def mark_done(self, session: Session) -> None:
        """Mark the message done inside `session`'s transaction; raises LeaseLost if it is not ours now."""
        won = session.execute(
            sa.update(InboxMessage)
            .where(InboxMessage.id == self.message_id, InboxMessage.state == "processing",
                   InboxMessage.attempts == self.attempts)
            .values(state="done", processed_at=self.ctx.clock.now(), lease_until=None, last_error=None)
        ).rowcount
        if won != 1:
            raise LeaseLost(f"{self.channel} message {self.key} is no longer ours to finish")
        session.info.setdefault("inbox_marked", set()).add(self.message_id)

    # -- services.db.CommitHook: ride along in the handler's transactions --
    def begin(self, session: Session) -> None:
        if not self.committed:
            sa.event.listen(session, "before_flush", _spot_outgoing)

    def before_commit(self, session: Session) -> bool:
        if self.message_id in session.info.get("inbox_marked", ()):
            return True  # the handler marked it itself
        if self.committed:
            return False
        if not (session.info.get("inbox_outgoing") or any(isinstance(obj, OUTGOING) for obj in session.new)
                or any(issubclass(model, OUTGOING) for model in session.info.get(INSERTED_NOW, ()))):
            return False
        self.mark_done(session)
        return True

    def after_commit(self) -> None:
        self.committed = True


def _spot_outgoing(session: Session, _context: Any, _instances: Any) -> None:
    if any(isinstance(obj, OUTGOING) for obj in session.new):
        session.info["inbox_outgoing"] = True


class Handler(Protocol):
    def __call__(self, payload: dict[str, Any], ticket: InboxTicket) -> Awaitable[None]: ...


# How many open messages one claim looks at (oldest first); later ones wait for a later claim.
CLAIM_WINDOW = 1000


def _claim(ctx: ServiceContext, channel: str, lease: timedelta, limit: int,
           holder: str = "") -> list[tuple[InboxTicket, dict[str, Any]]]:
    """Lease up to `limit` due messages of `channel` to `holder`, oldest first.

    A message is taken only when every earlier open message of its chat is held by `holder` itself
    (or taken in this same claim): so one chat's messages are in one process at a time, in order,
    and the process keeps them in order (aiogram's events isolation). Claims of one channel are
    serialised (PostgreSQL: a transaction advisory lock; SQLite: BEGIN IMMEDIATE), so two processes
    never decide on the same snapshot.
    """
    now = ctx.clock.now()
    claimed: list[tuple[InboxTicket, dict[str, Any]]] = []
    with transaction(ctx.sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _claim_lock_key(channel)})
        open_rows = session.execute(
            select(InboxMessage.id, InboxMessage.state, InboxMessage.attempts, InboxMessage.dedup_key,
                   InboxMessage.chat_key, InboxMessage.holder, InboxMessage.lease_until)
            .where(InboxMessage.channel == channel, InboxMessage.state.in_(_OPEN))
            .order_by(InboxMessage.seq, InboxMessage.id).limit(CLAIM_WINDOW)
        ).all()
        blocked: set[str] = set()  # chats with an earlier open message that is not ours
        chosen: list[tuple[int, str, int, str, str | None]] = []
        for message_id, state, attempts, key, chat, held_by, lease_until in open_rows:
            due = lease_until is None or lease_until <= now
            if chat is not None and chat in blocked:
                continue
            if due and len(chosen) < limit:
                chosen.append((message_id, state, attempts, key, chat))
                continue
            ours = state == "processing" and held_by == holder and holder and not due
            if chat is not None and not ours:
                blocked.add(chat)  # waiting for a retry, held elsewhere, or beyond this claim's room
        payloads = dict(session.execute(
            select(InboxMessage.id, InboxMessage.payload).where(InboxMessage.id.in_([c[0] for c in chosen]))
        ).all()) if chosen else {}
        lost: set[str] = set()
        for message_id, state, attempts, key, chat in chosen:
            if chat is not None and chat in lost:
                continue
            won = session.execute(
                sa.update(InboxMessage)
                .where(InboxMessage.id == message_id, InboxMessage.state == state, InboxMessage.attempts == attempts)
                .values(state="processing", lease_until=now + lease, attempts=attempts + 1, holder=holder or None)
                .execution_options(synchronize_session=False)
            ).rowcount
            if won == 1:
                ticket = InboxTicket(ctx, message_id=message_id, channel=channel, key=key, attempts=attempts + 1)
                claimed.append((ticket, payloads[message_id]))
            elif chat is not None:
                lost.add(chat)  # changed under us (a late finish): its chat's later messages wait
    return claimed


def _claim_lock_key(channel: str) -> int:
    return int.from_bytes(hashlib.sha256(f"inbox-claim:{channel}".encode()).digest()[:8], "big", signed=True)


def _finish(ctx: ServiceContext, ticket: InboxTicket, *, error: str | None) -> None:
    now = ctx.clock.now()
    if ticket.committed:  # done already, with the handler's effects; only note what went wrong after
        values: dict[str, Any] = {"last_error": error[:2000]} if error else {}
    elif error is None:
        values = {"state": "done", "processed_at": now, "lease_until": None, "last_error": None}
    elif ticket.attempts >= MAX_ATTEMPTS:
        values = {"state": "failed", "lease_until": None, "last_error": error[:2000]}
    else:
        values = {"state": "pending", "lease_until": now + timedelta(seconds=2 ** ticket.attempts),
                  "last_error": error[:2000]}
    if not values:
        return
    with transaction(ctx.sessions) as session:
        session.execute(sa.update(InboxMessage).where(
            InboxMessage.id == ticket.message_id, InboxMessage.attempts == ticket.attempts).values(**values))


def pending_count(ctx: ServiceContext, channel: str | None = None) -> int:
    with ctx.sessions() as session:
        query = select(func.count()).select_from(InboxMessage).where(InboxMessage.state.in_(_OPEN))
        if channel is not None:
            query = query.where(InboxMessage.channel == channel)
        return session.exec(query).one()


class InboxProcessor:
    """Hands stored messages to `handlers[channel]` (an `async def handle(payload, ticket)`).

    `concurrency[channel]` messages of a channel may be in hand at once (default 1: strictly one
    after the other). They are always started oldest first; Telegram's handlers then keep each
    chat in order themselves (aiogram's events isolation), as under aiogram's own polling.
    """

    def __init__(self, ctx: ServiceContext, handlers: Mapping[str, Handler], *, lease: timedelta = LEASE,
                 concurrency: Mapping[str, int] | None = None) -> None:
        self.ctx = ctx
        self.handlers = dict(handlers)
        self.lease = lease
        self.concurrency = {name: max(1, (concurrency or {}).get(name, 1)) for name in self.handlers}
        self._wake = {channel: asyncio.Event() for channel in self.handlers}
        self._running: dict[str, set[asyncio.Task[None]]] = {channel: set() for channel in self.handlers}
        self._loop: asyncio.AbstractEventLoop | None = None
        # Names this processor in the rows it holds, so only it takes the next messages of those chats.
        self.holder = uuid.uuid4().hex
        self.processed = 0
        self.failed = 0

    def wake(self, channel: str | None = None) -> None:
        """Look at the store now (one channel, or all); safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            for name, event in self._wake.items():
                if channel is None or name == channel:
                    self._loop.call_soon_threadsafe(event.set)

    async def run_once(self, channel: str | None = None) -> int:
        """Handle every message that is due now (one channel, or all) and wait for them; returns how many."""
        count = 0
        for name in [channel] if channel is not None else list(self.handlers):
            running = self._running[name]
            while True:
                count += await self._fill(name)
                if not running:
                    break
                done, _ = await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a crash of the bookkeeping itself propagates to the caller
        return count

    async def _fill(self, channel: str) -> int:
        """Start as many due messages as the channel's concurrency allows; returns how many were started."""
        running = self._running[channel]
        free = self.concurrency[channel] - len(running)
        if free <= 0:
            return 0
        claimed = await asyncio.to_thread(_claim, self.ctx, channel, self.lease, free, self.holder)
        for ticket, payload in claimed:
            task = asyncio.create_task(self._handle(channel, ticket, payload))
            running.add(task)
            task.add_done_callback(running.discard)
        return len(claimed)

    async def _handle(self, channel: str, ticket: InboxTicket, payload: dict[str, Any]) -> None:
        error = None
        try:
            with commit_hook(ticket):
                await self.handlers[channel](payload, ticket)
        except Exception as exc:  # noqa: BLE001 - recorded and retried, never lost
            log.exception("%s message %s failed (attempt %s)", channel, ticket.key, ticket.attempts)
            error = f"{type(exc).__name__}: {exc}"
            self.failed += 1
        await asyncio.to_thread(_finish, self.ctx, ticket, error=error)
        self.processed += error is None

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 1.0) -> None:
        """One loop per channel, so a slow channel never holds up another; until `stop` is set."""
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(self._run_channel(name, stop, poll_interval) for name in self.handlers))
        finally:
            # Cut off like a crash: what was in hand is handled again after its lease.
            for task in [t for running in self._running.values() for t in running]:
                task.cancel()

    async def _run_channel(self, channel: str, stop: asyncio.Event, poll_interval: float) -> None:
        wake = self._wake[channel]
        while not stop.is_set():
            wake.clear()
            try:
                await self._fill(channel)
            except Exception:  # noqa: BLE001 - the store may be briefly unavailable; keep going
                log.exception("inbox cycle for %s failed; retrying", channel)
            waiter = asyncio.create_task(wake.wait())
            try:
                done, _ = await asyncio.wait({waiter, *self._running[channel]}, timeout=poll_interval,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            for task in done - {waiter}:
                if not task.cancelled() and task.exception() is not None:
                    log.error("inbox bookkeeping for %s failed; the message is taken up again after its lease",
                              channel, exc_info=task.exception())
