"""The emulator's HTTP edge: Telegram's URL layout, the token check, and reading a call's parameters.

What callers may rely on: `/bot<token>/<method>` takes the query string plus a JSON, urlencoded
or multipart body (file parts apart) and answers what the in-process `call` answers; a wrong
token answers 401 and a body that cannot be read answers its error, each recorded as a request.
`/file/bot<token>/<path>` serves stored files.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.emulator.errors import ApiError, bad_request, not_found_error, unauthorized_error
from bot.emulator.files import FileStore
from bot.emulator.spec import UploadedFile

MAX_UPLOAD = 60 * 1024 * 1024  # above Telegram's 50 MB for documents

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


@dataclass
class RecordedRequest:
    """One call to the emulated API.

    `status` is the HTTP status answered, or None while the request is in flight (and for a
    request held by a "timeout" fault, whose client gave up). `fault` names the injected fault
    or refusal ("429", "5xx", "timeout", "403", "blocked", "flood") that answered it, if any.
    """

    method: str
    params: dict[str, Any]
    status: int | None = None
    result: Any = None
    description: str | None = None
    fault: str | None = None
    source: str = "http"
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == 200


class HttpFront:
    """Serves one bot's API and files over aiohttp; `call` runs each API request in-process."""

    def __init__(self, *, token: str, call: Call, files: FileStore, record: Callable[[RecordedRequest], None],
                 stats: Any) -> None:
        self.token = token
        self.call = call
        self.files = files
        self.record = record  # keeps a request refused before `call` (bad token, unreadable body)
        self.stats = stats
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> str:
        """Listen on host:port (port 0: any free port); returns the base URL."""
        app = web.Application(client_max_size=MAX_UPLOAD)
        app.router.add_route("*", "/bot{token}/{method}", self.handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self.handle_file)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            self.record(RecordedRequest(method, {}, status=401, description="Unauthorized"))
            return _json(unauthorized_error().body(), 401)
        try:
            params, files = await read_params(request)
        except ApiError as error:
            self.record(RecordedRequest(method, {}, status=error.status, description=error.description))
            return _json(error.body(), error.status)
        status, body = await self.call(method, params, files, source="http")
        return _json(body, status)

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json(unauthorized_error().body(), 401)
        stored = self.files.by_path(request.match_info["file_path"])
        if stored is None or stored.data is None:
            return _json(not_found_error().body(), 404)
        self.stats["downloads"] += 1
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.json_response(body, status=status)


async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Query string plus a JSON, urlencoded or multipart body; file parts separately."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    if request.method != "POST" or not request.body_exists:
        return params, files
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON request body") from None
        if not isinstance(body, dict):
            raise bad_request("JSON request body must be an object")
        params.update(body)
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "Request Entity Too Large") from None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                params.setdefault(key, value)
    else:
        raise bad_request(f"unsupported Content-Type {content_type}")
    return params, files
