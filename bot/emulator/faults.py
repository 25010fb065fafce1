"""Refusals before a method runs: injected faults, chats that blocked the bot, flood limits.

What callers may rely on: `Refusals.check` runs the three in that order and raises the first
refusal as an `ApiError`, after naming it in the request's record (`record.fault`) and counting
it in the shared `stats`; a refused request never reaches its method.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bot.emulator.errors import ApiError, too_many_requests
from bot.emulator.http import RecordedRequest
from bot.emulator.ratelimit import FloodControl
from bot.emulator.spec import ApiSpec
from bot.emulator.store import MessageStore

FAULT_KINDS = ("429", "5xx", "timeout", "403")


@dataclass
class Fault:
    """A fault to inject into matching requests; see `BotApiEmulator.inject`."""

    kind: str
    method: str | None = None
    chat_id: int | str | None = None
    times: int | None = 1
    retry_after: int = 1
    delay: float = 30.0
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


class Refusals:
    """The faults waiting to fire and the chats that blocked the bot, for one emulator."""

    def __init__(self, *, spec: ApiSpec, store: MessageStore, flood: FloodControl, stats: Counter[str],
                 closing: asyncio.Event, limits: bool) -> None:
        self.spec = spec
        self.store = store
        self.flood = flood
        self.stats = stats
        self.closing = closing  # set when the emulator stops: a held "timeout" request ends at once
        self.limits = limits
        self.faults: list[Fault] = []
        self.blocked: set[int | str] = set()

    def chat_of(self, params: dict[str, Any]) -> int | str | None:
        """The chat a call addresses (usernames resolved), or None."""
        chat_id = params.get("chat_id")
        return None if chat_id is None else self.store.resolve(chat_id)

    async def check(self, method: str, params: dict[str, Any], record: RecordedRequest) -> None:
        """Raise the first refusal that applies: an injected fault, a blocked chat, the flood limit."""
        await self._apply_faults(method, params, record)
        self._check_blocked(method, params, record)
        self._check_flood(method, params, record)

    async def _apply_faults(self, method: str, params: dict[str, Any], record: RecordedRequest) -> None:
        chat = self.chat_of(params)
        for fault in list(self.faults):
            if fault.method not in (None, method):
                continue
            if fault.chat_id is not None and self.store.resolve(fault.chat_id) != chat:
                continue
            fault.fired += 1
            if fault.exhausted:
                self.faults.remove(fault)
            record.fault = fault.kind
            self.stats[f"{fault.kind}_injected"] += 1
            if fault.kind == "429":
                raise too_many_requests(fault.retry_after)
            if fault.kind == "5xx":
                raise ApiError(502, "Bad Gateway")
            if fault.kind == "403":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            try:  # "timeout": hold until the client gives up (or the emulator stops)
                await asyncio.wait_for(self.closing.wait(), fault.delay)
            except TimeoutError:
                pass
            raise ApiError(504, "Gateway Timeout")

    def _check_blocked(self, method: str, params: dict[str, Any], record: RecordedRequest) -> None:
        chat = self.chat_of(params)
        if chat not in self.blocked:
            return
        if not (self.spec.sends_messages(method) or method == "sendChatAction"):
            return
        record.fault = "blocked"
        self.stats["403_blocked"] += 1
        if isinstance(chat, int) and chat < 0:
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")
        raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _check_flood(self, method: str, params: dict[str, Any], record: RecordedRequest) -> None:
        if not self.limits or not self.spec.sends_messages(method):
            return
        chat = self.chat_of(params)
        retry_after = self.flood.acquire(chat if chat is not None else "")
        if retry_after is not None:
            record.fault = "flood"
            self.stats["429"] += 1
            raise too_many_requests(retry_after)
