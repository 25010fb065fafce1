"""The delivery queue's sender: takes due notification rows from the store and makes the Bot API calls.

What callers may rely on:
- Messages to one chat go out in the order they were queued; a chat waiting out a retry holds
  back only its own later messages.
- The most urgent work goes first (models.tables.Priority: life safety, work orders, supervision,
  replies, resident updates, housekeeping). A chat ranks by its most urgent waiting row, so a
  work order queued behind a menu update in the same chat takes that menu update along.
- Telegram's limits are respected before Telegram has to say so: sends evenly spaced at
  `global_per_second` per bot, up to `burst` early while fewer than `window_count` calls are counted in
  the last `window_s` (bot/pace.py, shared with handlers' replies and, through Redis, other processes),
  and at least `chat_interval_s` (groups: `group_interval_s`) between two messages posted to one chat
  (edits are not paced per chat).
  A 429 is waited out for its `retry_after`.
- Network errors and 5xx are retried a few times at once (tenacity), then rescheduled in the
  store with exponential backoff; after `max_attempts` the row is marked failed and logged.
- A 403 (bot blocked) marks the row and the person as blocked instead of retrying forever.
- Nothing is lost across a restart: a row is claimed with a lease and marked sent only after
  Telegram accepted it. On cancellation, calls already on the wire are finished and recorded,
  unstarted claims are released. Only a hard crash between Telegram's answer and our commit
  can send a message twice (at-least-once; we never drop one instead).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiogram.methods
import sqlalchemy as sa
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from bot.delivery_build import build_method
from bot.delivery_limits import DeliveryLimits, DeliveryStats, UrgencyGate, backoff_seconds
from bot.pace import already_paced, make_gate, posts_message
from bot.delivery_queue import by_chat, due_rows, limit_per_chat, take_over
from models.tables import Notification, NotificationStatus, Person, Priority
from onegrid.clock import Clock
from services.db import transaction

log = logging.getLogger(__name__)

__all__ = ["DeliveryLimits", "DeliveryStats", "NotificationSender", "backoff_seconds"]

_TRANSIENT = (TelegramNetworkError, TelegramServerError)


class _Outcome:
    SENT, RETRY_LATER, BLOCKED, FAILED = "sent", "retry_later", "blocked", "failed"


class NotificationSender:
    def __init__(
        self,
        *,
        bot: Bot,
        sessions: sessionmaker[Session],
        clock: Clock,
        data_dir: Path,
        limits: DeliveryLimits | None = None,
        gate: UrgencyGate | None = None,
        batch_size: int = 200,
        lease: timedelta = timedelta(seconds=120),
        rows_per_chat: int = 3,
    ) -> None:
        self.bot = bot
        self.sessions = sessions
        self.clock = clock
        self.data_dir = data_dir
        self.limits = limits or DeliveryLimits()
        self.batch_size = batch_size
        # Enough chats to keep the bot-wide pace busy while each waits its own (about a second), and no more:
        # an urgent row never queues behind much more than a second of bot-wide sending.
        self.active_chats = max(1, math.ceil(self.limits.global_per_second * max(1.0, self.limits.chat_interval_s) * 1.2))
        self.rows_per_chat = rows_per_chat
        self.refill_at = max(1, self.active_chats // 4)
        self._stopping = False
        self.lease = lease
        self.stats = DeliveryStats()
        # The bot-wide pace, shared with the handlers' replies (bot/pace.py): never more than Telegram's 30
        # in a second, however late a call reaches it.
        self._global = gate or make_gate("", self.limits.global_per_second, None, count=self.limits.window_count,
                                         window=self.limits.window_s, burst=self.limits.burst)
        self._chat_last_sent: OrderedDict[int, float] = OrderedDict()  # loop time of each chat's last send
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Future[str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._postgres = sessions.kw["bind"].dialect.name == "postgresql"

    # -- waking ---------------------------------------------------------------------------
    def wake(self) -> None:
        """Ask the sender to look at the queue now; safe to call from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- the loop -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, poll_interval: float = 0.5) -> None:
        """Deliver until `stop` is set (or cancelled: calls on the wire are recorded, the rest released).

        A pipeline, not batches: at most `active_chats` chats are being served at once, each with at most
        `rows_per_chat` rows, and whenever one finishes (or a commit wakes us) the most urgent due rows are
        claimed for the free places. So a slow chat never holds back the others, and an urgent row waits
        at most about a second of bot-wide sending, however much housekeeping is queued.
        """
        self._loop = asyncio.get_running_loop()
        active: set[asyncio.Task[None]] = set()
        busy: set[int] = set()  # chats being served: a row whose lease ran out meanwhile is not taken twice

        def serve(chat_id: int, chat_rows: list[dict[str, Any]]) -> None:
            task = asyncio.ensure_future(self._deliver_chat(chat_rows))
            active.add(task)
            busy.add(chat_id)
            task.add_done_callback(lambda t: (active.discard(t), busy.discard(chat_id)))

        must_look = True  # at start, after a wake-up (new rows committed) or a quiet poll interval
        try:
            while not stop.is_set():
                # Clear before claiming: a wake-up from a commit that lands during the claim must not be lost.
                must_look = must_look or self._wake.is_set()
                self._wake.clear()
                room = self.active_chats - len(active)
                claimed = 0
                # A chat finishing frees one place: refill in groups, since each claim is a write to the store.
                if room > 0 and (must_look or room >= self.refill_at):
                    try:
                        rows = await asyncio.to_thread(self._claim, max_chats=room, rows_per_chat=self.rows_per_chat,
                                                       busy_chats=frozenset(busy))
                    except Exception:  # the store restarting must not kill delivery; try again shortly
                        log.exception("delivery claim failed; retrying")
                        rows = []
                    for chat_id, chat_rows in by_chat(rows).items():
                        serve(chat_id, chat_rows)
                    claimed = len(rows)
                    must_look = False
                if claimed and len(active) < self.active_chats:
                    continue  # there may be more due right now
                waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait()), *active]
                done, _ = await asyncio.wait(waiters, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
                # A wake-up waits for a free place if there is none now; a quiet interval looks again.
                must_look = must_look or not done or waiters[0] in done
                for w in waiters[:2]:
                    w.cancel()
        except asyncio.CancelledError:
            # Killed: calls already on the wire finish and are recorded; the chat tasks give back the rest.
            for task in list(active):
                task.cancel()
            await asyncio.gather(*active, return_exceptions=True)
            await asyncio.gather(*self._inflight, return_exceptions=True)
            raise
        # Stopped: each chat finishes the call it has on the wire (and what that call decided, such as
        # marking a blocked chat's other rows) and gives back the rows it had not started.
        self._stopping = True
        try:
            await asyncio.gather(*active, return_exceptions=True)
        finally:
            self._stopping = False

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver it; returns how many rows were handled."""
        self._loop = asyncio.get_running_loop()
        rows = await asyncio.to_thread(self._claim)
        if not rows:
            return 0
        tasks = [asyncio.ensure_future(self._deliver_chat(chat_rows)) for chat_rows in by_chat(rows).values()]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Let calls already on the wire finish and be recorded; the chat tasks give back the rest.
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*self._inflight, return_exceptions=True)
            raise
        return len(rows)

    # -- store side (sync, run in a worker thread; take_over hands its part to one) ------------
    async def take_over(self) -> int:
        """This process just became the bot's one sender (services/leadership.py): rows the previous
        sender left SENDING (it died) are due again at once, not after their lease; returns how many.
        A chat it wrote to within a group interval waits out its pace from now, as Telegram still counts it."""
        since = self.clock.now() - timedelta(seconds=self.limits.group_interval_s)

        def reset() -> tuple[int, set[int]]:
            with transaction(self.sessions) as session:
                return take_over(session, since)
        given_back, recent = await asyncio.to_thread(reset)
        for chat_id in recent:
            self._mark_chat_sent(chat_id)
        return given_back

    def _claim(self, *, max_chats: int | None = None, rows_per_chat: int | None = None,
               busy_chats: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
        """Mark the most urgent due rows SENDING under a lease and return them (in queue order per chat).

        At most `max_chats` chats and `rows_per_chat` rows of each (None: no limit beyond `batch_size`);
        none of `busy_chats` (this process is still serving them).
        """
        now = self.clock.now()
        query = due_rows(now, limit=self.batch_size, lock=self._postgres)
        with transaction(self.sessions) as session:
            rows = limit_per_chat([r for r in session.exec(query).all() if r.chat_id not in busy_chats],
                                  max_chats, rows_per_chat)
            for row in rows:
                row.status = NotificationStatus.SENDING
                row.lease_until = now + self.lease
            return [
                {"id": r.id, "chat_id": r.chat_id, "method": r.method, "payload": r.payload, "priority": r.priority,
                 "attempts": r.attempts, "person_id": r.person_id}
                for r in rows
            ]

    def _finish(self, row: dict[str, Any], outcome: str, *, message_id: int | None = None,
                error: str | None = None) -> None:
        now = self.clock.now()
        with transaction(self.sessions) as session:
            n = session.get(Notification, row["id"])
            if n is None:
                return
            n.lease_until = None
            if outcome == _Outcome.SENT:
                n.status, n.sent_at, n.telegram_message_id = NotificationStatus.SENT, now, message_id
                n.attempts += 1
            elif outcome == _Outcome.RETRY_LATER:
                n.attempts += 1
                n.last_error = error
                if n.attempts >= self.limits.max_attempts:
                    n.status = NotificationStatus.FAILED
                    log.error("notification %s to chat %s failed after %s attempts: %s",
                              n.id, n.chat_id, n.attempts, error)
                else:
                    n.status = NotificationStatus.PENDING
                    n.next_attempt_at = now + timedelta(seconds=backoff_seconds(n.attempts))
            elif outcome == _Outcome.BLOCKED:
                n.status, n.last_error = NotificationStatus.BLOCKED, error
                if n.person_id is not None:
                    person = session.get(Person, n.person_id)
                    if person is not None and person.blocked_bot_at is None:
                        person.blocked_bot_at = now
            elif outcome == _Outcome.FAILED:
                n.status, n.last_error = NotificationStatus.FAILED, error
                n.attempts += 1
                log.error("notification %s to chat %s refused by Telegram: %s", n.id, n.chat_id, error)

    def _release(self, rows: list[dict[str, Any]], status: NotificationStatus = NotificationStatus.PENDING,
                 error: str | None = None) -> None:
        if not rows:
            return
        with transaction(self.sessions) as session:
            session.execute(
                sa.update(Notification)
                .where(Notification.id.in_([r["id"] for r in rows]), Notification.status == NotificationStatus.SENDING)
                .values(status=status, lease_until=None, last_error=error)
            )

    # -- Telegram side ---------------------------------------------------------------------
    async def _pace_chat(self, chat_id: int) -> None:
        """Wait until this chat's previous message left at least one chat interval ago.

        Measured from when the previous request actually left (after the bot-wide limiter), not
        from when it asked to go: a wait for a bot-wide slot must not shorten the gap Telegram sees.
        Messages to one chat are sent one after another, so no lock is needed.
        """
        last = self._chat_last_sent.get(chat_id)
        if last is None:
            return
        self._chat_last_sent.move_to_end(chat_id)
        interval = self.limits.group_interval_s if chat_id < 0 else self.limits.chat_interval_s
        delay = last + interval - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _mark_chat_sent(self, chat_id: int) -> None:
        self._chat_last_sent[chat_id] = asyncio.get_running_loop().time()
        self._chat_last_sent.move_to_end(chat_id)
        if len(self._chat_last_sent) > 10_000:  # forget the least recently used chats
            self._chat_last_sent.popitem(last=False)

    async def _deliver_chat(self, rows: list[dict[str, Any]]) -> None:
        done = 0
        try:
            for row in rows:
                if self._stopping:  # stopping: finish what is on the wire, give the rest back
                    await asyncio.to_thread(self._release, rows[done:])
                    return
                # Shielded: once a call is on the wire its outcome is recorded even if we are cancelled.
                inner = asyncio.ensure_future(self._deliver_one(row))
                self._inflight.add(inner)
                inner.add_done_callback(self._inflight.discard)
                outcome = await asyncio.shield(inner)
                done += 1
                if outcome in (_Outcome.RETRY_LATER, _Outcome.BLOCKED):
                    rest = rows[done:]
                    if outcome == _Outcome.BLOCKED:
                        await asyncio.to_thread(self._release, rest, NotificationStatus.BLOCKED,
                                                "recipient has blocked the bot")
                    else:
                        await asyncio.to_thread(self._release, rest)
                    return
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._release, rows[done + 1:]))
            raise

    async def _deliver_one(self, row: dict[str, Any]) -> str:
        try:
            method = await build_method(row, self.data_dir)
        except ValueError as exc:  # includes pydantic's ValidationError: a malformed row, never sendable
            self.stats.failed += 1
            await asyncio.to_thread(self._finish, row, _Outcome.FAILED, error=f"malformed notification: {exc}")
            return _Outcome.FAILED
        except OSError as exc:  # its photo: a shared volume may be slow to show it; retried with backoff
            self.stats.rescheduled += 1
            await asyncio.to_thread(self._finish, row, _Outcome.RETRY_LATER, error=f"photo unreadable: {exc}")
            return _Outcome.RETRY_LATER
        waits = 0
        while True:
            try:
                result = await self._call_with_quick_retries(row["chat_id"], method, row.get("priority", Priority.REPLY))
            except TelegramRetryAfter as exc:
                self.stats.waited_429 += 1
                self.stats.count_error(exc)
                waits += 1
                if waits > self.limits.max_retry_after_waits:
                    self.stats.rescheduled += 1
                    await asyncio.to_thread(self._finish, row, _Outcome.RETRY_LATER, error=str(exc))
                    return _Outcome.RETRY_LATER
                log.warning("Telegram asked to wait %ss before chat %s", exc.retry_after, row["chat_id"])
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramForbiddenError as exc:
                self.stats.blocked += 1
                self.stats.count_error(exc)
                await asyncio.to_thread(self._finish, row, _Outcome.BLOCKED, error=exc.message)
                return _Outcome.BLOCKED
            except TelegramBadRequest as exc:
                self.stats.count_error(exc)
                if "message is not modified" in exc.message:
                    await asyncio.to_thread(self._finish, row, _Outcome.SENT)
                    return _Outcome.SENT
                self.stats.failed += 1
                await asyncio.to_thread(self._finish, row, _Outcome.FAILED, error=exc.message)
                return _Outcome.FAILED
            except _TRANSIENT as exc:
                self.stats.rescheduled += 1
                log.warning("delivery of notification %s deferred: %s", row["id"], exc)
                await asyncio.to_thread(self._finish, row, _Outcome.RETRY_LATER, error=f"{type(exc).__name__}: {exc}")
                return _Outcome.RETRY_LATER
            message_id = result.message_id if isinstance(result, Message) else None
            self.stats.sent += 1
            await asyncio.to_thread(self._finish, row, _Outcome.SENT, message_id=message_id)
            return _Outcome.SENT

    async def _call_with_quick_retries(self, chat_id: int, method: aiogram.methods.TelegramMethod,
                                       priority: int = Priority.REPLY) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            stop=stop_after_attempt(self.limits.quick_retries),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            reraise=True,
        )
        # Telegram's one-message-a-second-per-chat limit is about messages posted into the chat; edits,
        # deletions and menu updates are not messages, so they only take a bot-wide slot.
        posts = posts_message(method.__api_method__)
        async for attempt in retrying:
            with attempt:
                if posts:
                    await self._pace_chat(chat_id)
                async with self._global.slot(priority):  # counted until answered (bot/pace.py)
                    if posts:
                        self._mark_chat_sent(chat_id)
                    try:
                        with already_paced():
                            return await self.bot(method)
                    except _TRANSIENT as exc:
                        self.stats.transient_errors += 1
                        self.stats.count_error(exc)
                        raise
        raise AssertionError("unreachable")  # pragma: no cover
