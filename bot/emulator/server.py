"""A fake Telegram Bot API server on loopback, for tests and the sandbox mode.

The real aiogram `Bot` talks to it over HTTP:

    async with BotApiEmulator() as emu:
        bot = Bot(emu.token, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
        li = emu.user(1001, first_name="Li", language_code="zh-hans")
        await li.send_command("/start")
        ...  # run the Dispatcher
        await emu.wait_for(lambda: li.inbox)

What callers may rely on:
- Every request is checked against the bundled Bot API spec (see `spec`): wrong token → 401,
  unknown method → 404, unknown/missing/mistyped parameter → 400, Telegram's limits on text,
  captions and inline keyboards → 400. Method names are case-insensitive.
- Implemented methods answer like Telegram (see `methods`); other methods returning True answer
  `true`; the rest answer 501 naming the method.
- Checks run in this order: validation, injected faults, blocked chats, flood limits, the method.
  A request refused at any step changes nothing: it is not recorded as a sent message.
- `requests` records every call with its status; `sent(chat_id)` the bot's messages as they look
  now; `callback_answers` every answered callback query; `stats` counts refusals.
- `stop()` returns promptly even with long polls or held ("timeout") requests in flight.
- `watch()` gives a `ChangeFeed` naming the chats that changed (see `changes`), for live views.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bot.emulator.changes import ChangeFeed
from bot.emulator.errors import ApiError, not_found_error
from bot.emulator.faults import FAULT_KINDS, Fault, Refusals
from bot.emulator.files import FileStore
from bot.emulator.http import HttpFront, RecordedRequest
from bot.emulator.methods import HANDLERS
from bot.emulator.ratelimit import FloodControl
from bot.emulator.spec import ApiSpec, UploadedFile, load_spec
from bot.emulator.store import MessageStore
from bot.emulator.updates import UpdateQueue
from bot.emulator.users import FakeGroup, FakeUser
from bot.emulator.webhook import WebhookSender

log = logging.getLogger(__name__)

__all__ = ["FAULT_KINDS", "BotApiEmulator", "Fault", "RecordedRequest"]

_RECHECK_INTERVAL = 0.05


class BotApiEmulator:
    """A loopback Bot API server for one bot. See the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST",
        *,
        bot_username: str = "onegrid_test_bot",
        bot_first_name: str = "OneGrid",
        limits: bool = True,
        now: Callable[[], float] = time.monotonic,
        wall_time: Callable[[], float] = time.time,
        strict_chats: bool = False,
        webhook_retry_delay: float = 0.05,
        spec: ApiSpec | None = None,
    ) -> None:
        """
        `limits` turns Telegram's flood limits on; `now` is the clock they use (seconds,
        monotonic). `wall_time` gives message dates (Unix seconds). With `strict_chats`,
        sending to a chat no user or group was created for answers "chat not found".
        """
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("a bot token looks like '123456:secret'")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.spec = spec or load_spec()
        self.store = MessageStore(wall_time, strict_chats=strict_chats)
        self.files = FileStore(salt=token)
        self.queue = UpdateQueue()
        self.flood = FloodControl(now)
        self.webhook = WebhookSender(self.queue, self._webhook_reply, wall_time, retry_delay=webhook_retry_delay)

        self.requests: list[RecordedRequest] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.stats: Counter[str] = Counter()
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.stopped_live_locations: set[tuple[int, int]] = set()

        self._users: dict[int, FakeUser] = {}
        self._groups: dict[int, FakeGroup] = {}
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self.refusals = Refusals(spec=self.spec, store=self.store, flood=self.flood, stats=self.stats,
                                 closing=self._closing, limits=limits)
        self.http = HttpFront(token=token, call=self.call, files=self.files, record=self._record_refused,
                              stats=self.stats)
        self._feeds: set[ChangeFeed] = set()
        self._base_url: str | None = None

    @property
    def limits(self) -> bool:
        """Whether Telegram's flood limits are enforced."""
        return self.refusals.limits

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """E.g. "http://127.0.0.1:40123"; for `TelegramAPIServer.from_base`."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> BotApiEmulator:
        """Listen on host:port (port 0: any free port) and return self."""
        self._closing.clear()
        self.queue.reopen()
        self._base_url = await self.http.start(host, port)
        return self

    async def stop(self) -> None:
        """Stop serving; in-flight long polls and held requests end at once."""
        self._closing.set()
        self.queue.close()
        for feed in list(self._feeds):
            feed.close()
        await self.webhook.close()
        await self.http.stop()
        self._base_url = None

    async def __aenter__(self) -> BotApiEmulator:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- actors ------------------------------------------------------------------------------

    def user(self, user_id: int, first_name: str | None = None, *, last_name: str | None = None,
             username: str | None = None, language_code: str | None = None,
             is_premium: bool | None = None) -> FakeUser:
        """The fake user with this id, created on first call; later calls update given fields."""
        existing = self._users.get(user_id)
        if existing is None:
            existing = self._users[user_id] = FakeUser(
                self, user_id, first_name or f"User{user_id}", last_name=last_name, username=username,
                language_code=language_code, is_premium=is_premium)
            return existing
        for key, value in (
            ("first_name", first_name),
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
            ("is_premium", is_premium),
        ):
            if value is not None:
                setattr(existing, key, value)
        existing.register()
        return existing

    def group(self, chat_id: int, title: str = "Test group", *, chat_type: str | None = None,
              is_forum: bool = False, username: str | None = None) -> FakeGroup:
        """The group (chat_id < 0) with this id, created on first call."""
        if chat_id not in self._groups:
            self._groups[chat_id] = FakeGroup(
                self, chat_id, title, chat_type=chat_type, is_forum=is_forum, username=username
            )
        return self._groups[chat_id]

    def queue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for the bot (what users' actions do); returns a copy of it."""
        update = self.queue.put(kind, payload)
        self._signal_change()
        message = payload.get("message", payload)  # a callback query carries its message
        chat_id = message.get("chat", {}).get("id") if isinstance(message, dict) else None
        if isinstance(chat_id, int):
            self._publish(chat_id)
        return copy.deepcopy(update)

    # -- observation -------------------------------------------------------------------------

    def sent(self, chat_id: int, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The bot's messages in a chat, oldest first, as they look now (after edits).

        Deleted messages are left out, or with `include_deleted` flagged `"deleted": True`.
        """
        return self.store.messages(chat_id, sender_id=self.bot_id, include_deleted=include_deleted)

    def history(self, chat_id: int) -> list[dict[str, Any]]:
        """Every live message in a chat (the users' and the bot's), oldest first."""
        return self.store.messages(chat_id)

    def reply_keyboard(self, chat_id: int) -> dict[str, Any] | None:
        """The custom reply keyboard the chat shows now (ReplyKeyboardMarkup), if any."""
        state = self.store.chats.get(chat_id)
        return None if state is None else state.reply_keyboard

    def calls(self, method: str) -> list[RecordedRequest]:
        """Recorded requests of one method (any letter case)."""
        return [r for r in self.requests if r.method.lower() == method.lower()]

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Every update queued so far, delivered or not."""
        return list(self.queue.history)

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 15.0, *, chat_id: int | None = None
    ) -> Any:
        """Wait until `predicate()` is truthy and return its value (15 s by default: on a machine busy with a
        whole test suite a bot's reply has taken more than 5 s; the wait ends as soon as it comes).

        Re-checked whenever a request is recorded or an update queued, and at least every
        50 ms for conditions on state outside the emulator. On timeout raises TimeoutError
        listing what `chat_id` (or every chat) got.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(self._describe_timeout(timeout, chat_id))
            try:
                # woken by every request; the short cap also catches state the predicate reads
                # from elsewhere (e.g. a database row committed just after the last request)
                await asyncio.wait_for(self._changed.wait(), min(remaining, _RECHECK_INTERVAL))
            except TimeoutError:
                pass

    def _describe_timeout(self, timeout: float, chat_id: int | None) -> str:
        chats = [chat_id] if chat_id is not None else sorted(self.store.chats)
        lines = [f"condition not met within {timeout} s."]
        for cid in chats:
            got = [_summary(m) for m in self.sent(cid)]
            lines.append(f"chat {cid} got {len(got)} message(s) from the bot: {got}")
        recent = [f"{r.method}->{r.status}" + (f" ({r.description})" if r.description else "")
                  for r in self.requests[-10:]]
        lines.append(f"last requests: {recent}")
        return "\n".join(lines)

    def _signal_change(self) -> None:
        self._changed.set()

    # -- watching ----------------------------------------------------------------------------

    def watch(self) -> ChangeFeed:
        """A feed of the chats that change from now on; close it (or use `with`) when done."""
        feed = ChangeFeed(self._feeds.discard)
        if self._closing.is_set():
            feed.close()
        else:
            self._feeds.add(feed)
        return feed

    def touch(self, chat_id: int) -> None:
        """Tell watchers and waiters that `chat_id` changed outside the emulator (another messenger's pane)."""
        self._publish(chat_id)
        self._signal_change()

    def _publish(self, chat_id: int | str | None) -> None:
        if isinstance(chat_id, int):
            for feed in list(self._feeds):
                feed.mark(chat_id)

    def _publish_call(self, method: str, params: dict[str, Any]) -> None:
        """Tell watchers which chat a successful call changed, if any."""
        if method == "answerCallbackQuery":
            query = self.callback_queries.get(params.get("callback_query_id", ""))
            self._publish(query["chat_id"] if query else None)
        elif method not in ("sendChatAction", "getChat", "getChatMember", "getChatMenuButton"):
            self._publish(self.refusals.chat_of(params))

    # -- faults ------------------------------------------------------------------------------

    def inject(
        self,
        method: str | None = None,
        *,
        chat_id: int | str | None = None,
        kind: str = "429",
        times: int | None = 1,
        retry_after: int = 1,
        delay: float = 30.0,
    ) -> Fault:
        """Make the next `times` matching requests fail (None: until `clear_faults()`).

        `method` (any case; None for any) and `chat_id` (None for any) select requests. Kinds:
        "429" Too Many Requests with `retry_after`; "5xx" 502 Bad Gateway; "403" bot blocked;
        "timeout" holds the request `delay` seconds (longer than the client waits) and then
        answers 504; the method is not executed.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        canonical = None if method is None else self.spec.canonical_method(method)
        if method is not None and canonical is None:
            raise ValueError(f"no Bot API method {method!r}")
        fault = Fault(kind, canonical, chat_id, times, retry_after, delay)
        self.refusals.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.refusals.faults.clear()

    def block(self, chat_id: int | str) -> None:
        """Every send to this chat answers 403 (the user blocked the bot) until `unblock`."""
        self.refusals.blocked.add(self.store.resolve(chat_id))

    def unblock(self, chat_id: int | str) -> None:
        self.refusals.blocked.discard(self.store.resolve(chat_id))

    # -- the API -----------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        files: dict[str, UploadedFile] | None = None,
        *,
        source: str = "local",
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call in-process, exactly as over HTTP; returns (status, body)."""
        canonical = self.spec.canonical_method(method)
        record = RecordedRequest(canonical or method, dict(params or {}), source=source)
        self.requests.append(record)
        self._signal_change()
        try:
            if canonical is None:
                raise not_found_error()
            parsed = self.spec.validate(canonical, params or {}, files or {})
            record.params = parsed
            await self.refusals.check(canonical, parsed, record)
            result = await self._dispatch(canonical, parsed)
            record.status, record.result = 200, result
            self._publish_call(canonical, parsed)
            return 200, {"ok": True, "result": result}
        except ApiError as error:
            record.status, record.description = error.status, error.description
            return error.status, error.body()
        except Exception:
            log.exception("emulator failed on %s", method)
            record.status, record.description = 500, "Internal Server Error"
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        finally:
            self._signal_change()

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        handler = HANDLERS.get(method)
        if handler is None:
            if self.spec.returns(method) == ["Boolean"]:
                return True
            raise ApiError(501, f"Not Implemented: the emulator does not implement {method}")
        result = handler(self, params)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _webhook_reply(self, method: str, params: dict[str, Any]) -> None:
        await self.call(method, params, source="webhook-reply")

    def _record_refused(self, record: RecordedRequest) -> None:
        """Keep a request the HTTP edge refused before `call` (bad token, unreadable body)."""
        self.requests.append(record)
        self._signal_change()


def _summary(message: dict[str, Any]) -> str:
    for key in ("text", "caption"):
        if key in message:
            return f"#{message['message_id']} {message[key]!r}"
    kind = next((k for k in ("photo", "document", "location", "venue") if k in message), "message")
    return f"#{message['message_id']} <{kind}>"
