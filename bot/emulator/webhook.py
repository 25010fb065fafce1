"""Pushing updates to the bot's webhook, as Telegram does after setWebhook.

What callers may rely on:
- Updates are POSTed as JSON one at a time, in order, with the header
  X-Telegram-Bot-Api-Secret-Token when a secret token was set.
- An update counts as delivered on any 2xx answer. Otherwise (other status, connection error,
  timeout) it is retried with exponential backoff from `retry_delay` up to `max_retry_delay`,
  and getWebhookInfo reports last_error_date / last_error_message.
- A 2xx answer whose JSON body has a "method" field is executed as a Bot API call, as Telegram
  does for replies to webhook requests.
- Plain http:// URLs on any port are accepted (Telegram insists on HTTPS and a few ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.emulator.updates import UpdateQueue

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class WebhookConfig:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    ip_address: str | None = None
    has_custom_certificate: bool = False
    last_error_date: int | None = None
    last_error_message: str | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class WebhookSender:
    """Delivers queued updates to the configured webhook in a background task."""

    def __init__(
        self,
        queue: UpdateQueue,
        execute_reply: Callable[[str, dict[str, Any]], Awaitable[Any]],
        wall_time: Callable[[], float],
        *,
        retry_delay: float = 0.05,
        max_retry_delay: float = 2.0,
        request_timeout: float = 10.0,
    ) -> None:
        self._queue = queue
        self._execute_reply = execute_reply
        self._wall_time = wall_time
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.request_timeout = request_timeout
        self.config: WebhookConfig | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def configure(self, config: WebhookConfig | None) -> None:
        """Set (or with None, remove) the webhook; delivery starts or stops at once."""
        self.config = config
        if config is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="emulator-webhook")
        self._queue.notify()

    def info(self) -> dict[str, Any]:
        """The Bot API `WebhookInfo` object."""
        config = self.config
        if config is None:
            return {"url": "", "has_custom_certificate": False, "pending_update_count": self._queue.pending_count}
        result: dict[str, Any] = {
            "url": config.url,
            "has_custom_certificate": config.has_custom_certificate,
            "pending_update_count": self._queue.pending_count,
            "max_connections": config.max_connections,
            "ip_address": config.ip_address or "127.0.0.1",
        }
        if config.allowed_updates:
            result["allowed_updates"] = config.allowed_updates
        if config.last_error_date is not None:
            result["last_error_date"] = config.last_error_date
            result["last_error_message"] = config.last_error_message
        return result

    async def close(self) -> None:
        self.config = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        delay = self.retry_delay
        while True:
            config = self.config
            update = self._queue.first_pending() if config is not None else None
            if config is None or update is None:
                await self._queue.changed(None)
                continue
            error = await self._deliver(config, update)
            if error is None:
                self._queue.confirm_one(update["update_id"])
                delay = self.retry_delay
                continue
            config.last_error_date = int(self._wall_time())
            config.last_error_message = error
            log.debug("webhook delivery of update %s failed: %s", update["update_id"], error)
            await self._queue.changed(delay)  # a new setWebhook/deleteWebhook also wakes us
            delay = min(delay * 2, self.max_retry_delay)

    async def _deliver(self, config: WebhookConfig, update: dict[str, Any]) -> str | None:
        """POST one update; None on success, else the error Telegram would report."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))
        headers = {SECRET_HEADER: config.secret_token} if config.secret_token else {}
        attempt = {"update_id": update["update_id"], "url": config.url, "status": None}
        config.deliveries.append(attempt)
        try:
            async with self._session.post(config.url, json=update, headers=headers) as response:
                attempt["status"] = response.status
                reply = await _read_reply(response) if 200 <= response.status < 300 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            attempt["error"] = f"{type(exc).__name__}: {exc}"
            return f"Connection failed: {type(exc).__name__}"
        if not 200 <= response.status < 300:
            return f"Wrong response from the webhook: {response.status} {response.reason}"
        if reply and isinstance(reply.get("method"), str):
            params = {k: v for k, v in reply.items() if k != "method"}
            await self._execute_reply(reply["method"], params)
        return None


async def _read_reply(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """A Bot API call in a webhook answer: a JSON object, or a form (what aiogram sends)."""
    if response.content_type == "multipart/form-data":
        reader = aiohttp.MultipartReader.from_response(response)
        fields: dict[str, Any] = {}
        async for part in reader:
            if isinstance(part, aiohttp.BodyPartReader) and part.name and not part.filename:
                fields[part.name] = await part.text()
        return fields
    body = await response.read()
    try:
        reply = json.loads(body) if body else None
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None
