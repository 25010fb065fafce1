"""The WeCom server API stand-in: gettoken, message/send, media/upload, media/get on loopback.

What callers may rely on:
- gettoken checks corpid and corpsecret (40013 / 40001) and issues a token valid `token_ttl_s`;
  `expire_tokens()` makes every issued token expired (42001), an unknown token answers 40014.
- message/send checks the documented fields (touser, agentid, msgtype and its object; a
  button_interaction card's main_title.title, a unique task_id of at most 128 of [0-9a-zA-Z_-@],
  1-6 buttons each with text and key; text.content at most 2048 bytes; image.media_id uploaded
  here) and answers 40003-style errors naming what is wrong. Accepted messages land in
  `inbox(userid)`; each gets a msgid (and a response_code for cards).
- `fail_next(errcode, times)` answers the next calls of message/send with that errcode (45009, -1)
  or, for 500/502/503, with that HTTP status. Refused calls change nothing.
- `requests` records every call as (path, errcode or HTTP status).
- Each function in `listeners` is called with the userid of every member an accepted message reached.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from wecom.formats import MAX_BUTTONS, MAX_HORIZONTAL, MAX_TEXT_BYTES

TASK_ID = re.compile(r"^[0-9a-zA-Z_\-@]{1,128}$")


@dataclass
class Received:
    """One message a member got from the app."""

    msgtype: str
    body: dict[str, Any]
    msgid: str
    response_code: str | None = None
    image: bytes | None = None

    @property
    def text(self) -> str:
        """What the member reads: the text, or a card's title, description, lines and sub-title."""
        if self.msgtype == "text":
            return self.body["text"]["content"]
        if self.msgtype == "template_card":
            card = self.body["template_card"]
            parts = [card["main_title"].get("title", ""), card["main_title"].get("desc", "")]
            parts += [f'{row["keyname"]}: {row["value"]}' for row in card.get("horizontal_content_list", [])]
            parts.append(card.get("sub_title_text", ""))
            return "\n".join(p for p in parts if p)
        return ""

    @property
    def buttons(self) -> dict[str, str]:
        """Button text -> key, for a card."""
        if self.msgtype != "template_card":
            return {}
        return {b["text"]: b["key"] for b in self.body["template_card"].get("button_list", [])}

    @property
    def links(self) -> dict[str, str]:
        """A card's link rows (horizontal_content_list type 1): name -> url."""
        rows = self.body.get("template_card", {}).get("horizontal_content_list", [])
        return {r["keyname"]: r["url"] for r in rows if r.get("type") == 1}

    @property
    def task_id(self) -> str | None:
        return self.body.get("template_card", {}).get("task_id")


@dataclass
class _Fault:
    code: int
    times: int


@dataclass
class WecomEmulator:
    corp_id: str = "ww0123456789abcdef"
    secret: str = "app-secret"
    agent_id: int = 1000002
    token: str = "CallbackToken"
    encoding_aes_key: str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    token_ttl_s: int = 7200
    now: Callable[[], float] = time.time
    callback_url: str | None = None  # where members' callbacks go (OneGrid's /wecom/callback)
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    requests: list[tuple[str, int]] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)
    _tokens: dict[str, float] = field(default_factory=dict)
    _inboxes: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    _task_ids: set[str] = field(default_factory=set)
    _faults: list[_Fault] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> WecomEmulator:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._send)
        app.router.add_post("/cgi-bin/media/upload", self._upload)
        app.router.add_get("/cgi-bin/media/get", self._media_get)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # noqa: SLF001 - aiohttp names no public accessor for port 0
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WecomEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what tests look at and inject ------------------------------------------------------------------------

    def inbox(self, userid: str) -> list[Received]:
        return self._inboxes[userid]

    def expire_tokens(self) -> None:
        for token in self._tokens:
            self._tokens[token] = 0.0

    def fail_next(self, code: int, times: int = 1) -> None:
        """The next `times` message/send calls answer `code` (a WeCom errcode, or an HTTP status 500-599)."""
        self._faults.append(_Fault(code, times))

    def next_msg_id(self) -> str:
        """A MsgId unique across the corp's members, as WeCom's are."""
        self._msg_seq = getattr(self, "_msg_seq", int(time.time() * 1000)) + 1
        return str(self._msg_seq)

    def store_media(self, data: bytes) -> str:
        media_id = "m_" + secrets.token_hex(12)
        self.media[media_id] = data
        return media_id

    @property
    def token_grants(self) -> int:
        return sum(1 for path, code in self.requests if path == "gettoken" and code == 0)

    # -- the API -------------------------------------------------------------------------------------------

    def _answer(self, path: str, code: int, msg: str = "ok", **extra: Any) -> web.Response:
        self.requests.append((path, code))
        return web.json_response({"errcode": code, "errmsg": msg, **extra})

    def _token_error(self, path: str, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self._tokens:
            return self._answer(path, 40014, "invalid access_token")
        if self._tokens[token] <= self.now():
            return self._answer(path, 42001, "access_token expired")
        return None

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id:
            return self._answer("gettoken", 40013, "invalid corpid")
        if request.query.get("corpsecret") != self.secret:
            return self._answer("gettoken", 40001, "invalid credential")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self.now() + self.token_ttl_s
        return self._answer("gettoken", 0, access_token=token, expires_in=self.token_ttl_s)

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()  # read before answering, or the client sees the connection reset
        if (refused := self._token_error("message/send", request)) is not None:
            return refused
        if self._faults:
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            if 500 <= fault.code < 600:
                self.requests.append(("message/send", fault.code))
                return web.Response(status=fault.code, text="server error")
            return self._answer("message/send", fault.code, "injected fault")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._answer("message/send", 40003, "invalid json")
        problem = self._check(body)
        if problem:
            return self._answer("message/send", 40003 if "touser" not in problem else 81013, problem)
        msgid = secrets.token_hex(8)
        received = Received(body["msgtype"], body, msgid)
        if body["msgtype"] == "template_card":
            received.response_code = secrets.token_hex(8)
            self._task_ids.add(body["template_card"]["task_id"])
        if body["msgtype"] == "image":
            received.image = self.media[body["image"]["media_id"]]
        for userid in body["touser"].split("|"):
            self._inboxes[userid].append(received)
            for listener in self.listeners:
                listener(userid)
        extra = {"response_code": received.response_code} if received.response_code else {}
        return self._answer("message/send", 0, invaliduser="", msgid=msgid, **extra)

    def _check(self, body: dict[str, Any]) -> str | None:
        """The first way `body` departs from the documented message/send fields, or None."""
        if not isinstance(body.get("touser"), str) or not body["touser"]:
            return "touser missing"
        if body.get("agentid") != self.agent_id:
            return "invalid agentid"
        kind = body.get("msgtype")
        if kind == "text":
            content = body.get("text", {}).get("content")
            if not isinstance(content, str) or not content or len(content.encode()) > MAX_TEXT_BYTES:
                return "text.content missing or longer than 2048 bytes"
        elif kind == "image":
            if body.get("image", {}).get("media_id") not in self.media:
                return "image.media_id unknown"
        elif kind == "template_card":
            card = body.get("template_card", {})
            if card.get("card_type") != "button_interaction":
                return "template_card.card_type must be button_interaction"
            if not card.get("main_title", {}).get("title"):
                return "template_card.main_title.title missing"
            task_id = card.get("task_id", "")
            if not TASK_ID.match(task_id) or task_id in self._task_ids:
                return "template_card.task_id missing, malformed or reused"
            buttons = card.get("button_list", [])
            if not 1 <= len(buttons) <= MAX_BUTTONS or any(not b.get("text") or not b.get("key") for b in buttons):
                return "template_card.button_list needs 1-6 buttons with text and key"
            if any(len(b["key"].encode()) > 1024 for b in buttons):
                return "template_card.button_list.key longer than 1024 bytes"
            rows = card.get("horizontal_content_list", [])
            if len(rows) > MAX_HORIZONTAL or any(not r.get("keyname") for r in rows):
                return "template_card.horizontal_content_list needs at most 6 rows, each with a keyname"
            if any(r.get("type") == 1 and not str(r.get("url", "")).startswith(("http://", "https://")) for r in rows):
                return "template_card.horizontal_content_list.url is required for type 1"
        else:
            return f"msgtype {kind!r} not supported"
        return None

    async def _upload(self, request: web.Request) -> web.Response:
        post = await request.post()
        if (refused := self._token_error("media/upload", request)) is not None:
            return refused
        if request.query.get("type") != "image":
            return self._answer("media/upload", 40004, "invalid media type")
        media = post.get("media")
        if media is None or not hasattr(media, "file"):
            return self._answer("media/upload", 41001, "media missing")
        media_id = self.store_media(media.file.read())
        return self._answer("media/upload", 0, type="image", media_id=media_id, created_at=str(int(self.now())))

    async def _media_get(self, request: web.Request) -> web.Response:
        if (refused := self._token_error("media/get", request)) is not None:
            return refused
        data = self.media.get(request.query.get("media_id", ""))
        if data is None:
            return self._answer("media/get", 40007, "invalid media_id")
        self.requests.append(("media/get", 0))
        return web.Response(body=data, content_type="image/jpeg")
