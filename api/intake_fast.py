"""Keyed machine intake past the framework: `POST /api/v1/cases` with an Idempotency-Key, a known key and a
valid body, answered without FastAPI's routing, dependency solving and middleware stack.

Cameras and sensors send bursts of exactly this request. Through the framework its API side cost
0.27–0.31 ms of CPU per case, here 0.13 (bench/intake_parts.py, "api"; docs/BENCHMARKS.md, 2026-12-06,
14:28): seven middleware layers, matching the path against every route, solving eight dependencies
(a wall-clock profile with the GIL shared by three threads put far more there). This takes the request when
everything about it is the usual and gives the same answer the route gives, through the same functions
(`api/routes/cases.py` `write_keyed`, the key's rate limit and scope, the error shapes), with what the
middleware would have added: the request id (`X-Request-ID`, its log context), the latency histogram,
the body limit.

Anything unusual goes to the full app, the body it read handed on unchanged: no or an unknown key (the
app authenticates it and, once accepted, it comes here), no Idempotency-Key, another content type, no or
a too large Content-Length, a body that does not validate (the app's 422 says why). So the answers are
the app's; the tests of the route run through here, and tests/api/test_intake_fast.py compares both
ways for any mix of requests. A rule added to the route as a FastAPI dependency, or a middleware that
must see these requests, has to be added here too: that test fails when its answers differ.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from asgi_correlation_id import correlation_id
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from api.deps import ApiError, check_scope, error_response, take_turn
from api.metrics import observe_request
from api.routes.cases import INTAKE_PATH, machine_report, write_keyed
from api.schemas import CaseCreate
from models.api import Scope as KeyScope
from onegrid.logs import is_sane_request_id, new_request_id
from services.api_keys import recently_authenticated

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from onegrid.app import OneGrid

log = logging.getLogger(__name__)
_ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]
_WANTED = (b"authorization", b"idempotency-key", b"content-type", b"content-length", b"x-request-id")


class OneGridAPI(FastAPI):
    """FastAPI with `keyed_intake` in front of its middleware stack, set by `api.app.create_api`."""

    keyed_intake: KeyedIntake | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.keyed_intake
        if fast is not None and scope["type"] == "http" and scope["path"] == INTAKE_PATH \
                and scope["method"] == "POST":
            await fast(scope, receive, send, super().__call__)
            return
        await super().__call__(scope, receive, send)


class _Route:
    """What the latency histogram reads of a matched route: its template."""

    path = INTAKE_PATH


class KeyedIntake:
    def __init__(self, app: OneGrid, api: FastAPI, *, body_limit: int, latency: Histogram) -> None:
        self.ctx, self.state, self.body_limit, self.latency = app.ctx, api.state, body_limit, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: _ASGI) -> None:
        started = time.perf_counter()
        headers = _headers(scope)
        token, key = _bearer(headers.get(b"authorization")), headers.get(b"idempotency-key")
        size = _length(headers.get(b"content-length"))
        if token is None or key is None or size is None or size > self.body_limit \
                or not _is_json(headers.get(b"content-type")):
            await app(scope, receive, send)
            return
        body, more = await _read(receive, self.body_limit)
        receive = _replaying(body, more, receive)
        principal = recently_authenticated(self.ctx, token=token)
        parsed = _parsed(body) if principal is not None and not more else None
        if parsed is None:
            await app(scope, receive, send)
            return
        request_id = _request_id(headers.get(b"x-request-id"))
        correlation_id.set(request_id)
        status = 500
        try:
            response = await self._answer(principal, parsed, key.decode("latin-1"), body)
            response.headers.append("X-Request-ID", request_id)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            observe_request(self.latency, "POST", _Route, status, time.perf_counter() - started)

    async def _answer(self, principal: Any, parsed: CaseCreate, key: str, body: bytes) -> Response:
        try:
            try:
                take_turn(self.state.rate_limiter, self.ctx, principal)
                check_scope(principal, KeyScope.INTAKE)
                return await write_keyed(self.state.intake_writer, self.ctx, principal, machine_report(parsed),
                                         key=key, body=body)
            except ApiError as exc:
                return error_response(exc)
        except Exception:  # noqa: BLE001 - answered as the app's ServerErrorMiddleware answers it
            log.exception("keyed intake failed")
            return PlainTextResponse("Internal Server Error", status_code=500)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header this reads (as Starlette's `Headers.get` would)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _WANTED and name not in found:
            found[name] = value
    return found


def _bearer(value: bytes | None) -> str | None:
    """The credentials of `Authorization: Bearer ...`, read as FastAPI's HTTPBearer reads them."""
    if not value:
        return None
    scheme, _, credentials = value.decode("latin-1").partition(" ")
    credentials = credentials.strip()
    return credentials if credentials and scheme.lower() == "bearer" else None


def _length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _is_json(value: bytes | None) -> bool:
    return value is not None and value.split(b";", 1)[0].strip().lower() == b"application/json"


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body up to just past `limit`; True when more is left (or the client went away mid-way)."""
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        seen += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if seen > limit:
            return b"".join(chunks), True


def _replaying(body: bytes, more: bool, receive: Receive) -> Receive:
    """`receive` as it was before `_read`: what was read comes first, as one message."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _parsed(body: bytes) -> CaseCreate | None:
    try:
        return CaseCreate.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # (json's errors are ValueErrors) the app's 422 says what is wrong
        return None


def _request_id(value: bytes | None) -> str:
    """The caller's X-Request-ID when it is sane, else a new one (as CorrelationIdMiddleware chooses)."""
    given = value.decode("latin-1") if value else ""
    if given and is_sane_request_id(given):
        return given
    if given:
        log.warning("Generated new request ID, since request header value failed validation")
    return new_request_id()
