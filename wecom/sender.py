"""The WeCom sender: takes due `wecom_message` rows and makes the message/send calls.

What callers may rely on:
- Rows go out most urgent first, then in the order queued, one at a time, so one person's messages
  keep their order (WeCom allows far more than OneGrid's staff send).
- A row is marked sent only after WeCom accepted it (at-least-once). Limits and faults (45009, -1, 5xx,
  the network) are retried in the call (wecom/client.py), then rescheduled with exponential backoff;
  after `max_attempts`, or when WeCom refuses the message for good, the row is marked failed (dead
  letter) and logged, never dropped silently.
- A template card's `task_id` is `og<row id>`: unique per app, as WeCom requires.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from models.tables import NotificationStatus
from models.wecom import WecomMessage
from onegrid.clock import Clock
from services.db import transaction
from wecom.client import Rejected, RetryLater, WecomClient
from wecom.formats import send_body

log = logging.getLogger(__name__)


class WecomSender:
    def __init__(self, *, client: WecomClient, sessions: sessionmaker[Session], clock: Clock, data_dir: Path,
                 agent_id: int, max_attempts: int = 20, batch_size: int = 50) -> None:
        self.client, self.sessions, self.clock = client, sessions, clock
        self.data_dir, self.agent_id = data_dir, agent_id
        self.max_attempts, self.batch_size = max_attempts, batch_size
        self.sent = self.failed = self.retried = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look at the queue now; safe from any thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event, poll_interval: float = 0.5) -> None:
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:  # noqa: BLE001 - the store restarting must not end delivery
                log.exception("WeCom delivery round failed; retrying")
                handled = 0
            if handled:
                continue
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    async def run_once(self) -> int:
        """Send every due row once (in order); returns how many were handled."""
        self._loop = asyncio.get_running_loop()
        rows = await asyncio.to_thread(self._due)
        for row_id, touser, payload, attempts in rows:
            await self._deliver(row_id, touser, payload, attempts)
        return len(rows)

    def _due(self) -> list[tuple[int, str, dict[str, Any], int]]:
        with transaction(self.sessions) as session:
            rows = session.exec(
                select(WecomMessage).where(WecomMessage.status == NotificationStatus.PENDING,
                                           WecomMessage.next_attempt_at <= self.clock.now())
                .order_by(WecomMessage.priority, WecomMessage.id).limit(self.batch_size)).all()
            # A recipient waiting out a retry holds back only their own later rows.
            held: set[str] = set(session.exec(
                select(WecomMessage.touser).where(WecomMessage.status == NotificationStatus.PENDING,
                                                  WecomMessage.next_attempt_at > self.clock.now())).all())
            return [(r.id, r.touser, r.payload, r.attempts) for r in rows if r.touser not in held]

    async def _deliver(self, row_id: int, touser: str, payload: dict[str, Any], attempts: int) -> None:
        message = copy.deepcopy(payload)
        try:
            if message.get("msgtype") == "image" and "photo_path" in message["image"]:
                media_id = await self.client.upload_image(self.data_dir / message["image"].pop("photo_path"))
                message["image"]["media_id"] = media_id
            if message.get("msgtype") == "template_card":
                message["template_card"]["task_id"] = f"og{row_id}"
            answer = await self.client.send(send_body(message, touser=touser, agent_id=self.agent_id))
        except RetryLater as exc:
            await asyncio.to_thread(self._reschedule, row_id, attempts + 1, str(exc))
            return
        except (Rejected, OSError) as exc:
            await asyncio.to_thread(self._finish, row_id, NotificationStatus.FAILED, error=str(exc))
            log.error("WeCom message %s dead-lettered: %s", row_id, exc)
            return
        await asyncio.to_thread(self._finish, row_id, NotificationStatus.SENT, msgid=str(answer.get("msgid", "")))

    def _reschedule(self, row_id: int, attempts: int, error: str) -> None:
        self.retried += 1
        status = NotificationStatus.FAILED if attempts >= self.max_attempts else NotificationStatus.PENDING
        delay = timedelta(seconds=min(600, 2 ** min(attempts, 10)))
        with transaction(self.sessions) as session:
            session.execute(sa.update(WecomMessage).where(WecomMessage.id == row_id).values(
                attempts=attempts, status=status, last_error=error[:2000],
                next_attempt_at=self.clock.now() + delay))
        if status is NotificationStatus.FAILED:
            self.failed += 1
            log.error("WeCom message %s dead-lettered after %s attempts: %s", row_id, attempts, error)

    def _finish(self, row_id: int, status: NotificationStatus, *, error: str | None = None,
                msgid: str | None = None) -> None:
        if status is NotificationStatus.SENT:
            self.sent += 1
        else:
            self.failed += 1
        with transaction(self.sessions) as session:
            session.execute(sa.update(WecomMessage).where(WecomMessage.id == row_id).values(
                status=status, last_error=error, msgid=msgid,
                sent_at=self.clock.now() if status is NotificationStatus.SENT else None))
