"""The HTTP API. Built by `create_api(container)`; no module-level app or settings.

Routers: /health, /health/live, /health/ready and /metrics (api/ops.py), /open311/v2 (GeoReport v2), /api/v1 (management, machine
intake, sync), /telegram/webhook. Bodies over the configured size are refused with 413 before
they are read in full; every request's latency goes to the /metrics histogram.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from asgi_correlation_id import CorrelationIdMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import console, open311, ops, v1, webhook
from api.deps import REFUSALS, ApiError, error_response, refusal
from api.intake_fast import KeyedIntake, OneGridAPI
from api.intake_writer import IntakeWriter
from api.metrics import ObserveLatency, make_registry
from api.routes import open311 as open311_routes
from services.api_keys import RateLimiter
from onegrid.logs import is_sane_request_id, new_request_id

if TYPE_CHECKING:
    from onegrid.app import OneGrid

DESCRIPTION = """Case store API of OneGrid, the chat front end for city grid management (一网统管).

* **Open311 GeoReport v2** under `/open311/v2/` (JSON and XML; `api_key` as a query parameter or form field).
* **Management and machine intake** under `/api/v1/` with `Authorization: Bearer og_<key_id>_<secret>`.
  Keys carry scopes (read, write, intake, admin, pii) and an area: anything outside the key's area
  answers 404, as if it did not exist.
* **Idempotency-Key** (IETF draft) on unsafe `/api/v1` requests: keys expire 24 hours after first use
  (setting `ONEGRID_IDEMPOTENCY_TTL_HOURS`; the `Idempotency-Expires` header gives the lifetime in seconds).
  `POST /api/v1/invitations` is the exception: its answer carries a one-time link that is never stored.
* Rate limits per key answer 429 with `Retry-After`; bodies are limited in size (413).
* Errors of `/api/v1` answer `{"detail": ..., "code": ...}`: `code` is stable and machine-readable, `detail`
  a short English message (for 422 from request validation, the list of problems with their location).
"""

TAGS = [
    {"name": "ops", "description": "Health and Prometheus metrics"},
    {"name": "open311", "description": "Open311 GeoReport v2"},
    {"name": "keys", "description": "The calling API key"},
    {"name": "cases", "description": "Cases in the key's area: list, read with timeline, edit text, lifecycle actions"},
    {"name": "intake", "description": "Machine intake from cameras, sensors and the 12345 hotline, and clears (自动结案)"},
    {"name": "exports", "description": "Cases as GeoJSON and CSV"},
    {"name": "areas", "description": "The map: city, districts, streets, grids"},
    {"name": "categories", "description": "The category catalogue, intake rules and questions"},
    {"name": "people", "description": "Staff (and residents, for keys without an area); deactivating workers"},
    {"name": "invitations", "description": "One-time Telegram links that onboard workers and supervisors"},
    {"name": "kpis", "description": "KPIs (综合评价) of an area over a period"},
    {"name": "sync", "description": "Events from a downstream OneGrid"},
    {"name": "warnings", "description": "Warnings (预警) to an area's on-duty workers, with acknowledgements"},
    {"name": "campaigns", "description": "Inspection campaigns (专项排查): checklists of places"},
    {"name": "telegram", "description": "The Telegram webhook"},
]


class BodyLimit:
    """Refuse request bodies over a limit with 413, by Content-Length and while streaming."""

    def __init__(self, app: ASGIApp, *, default: int, overrides: dict[str, int]) -> None:
        self.app, self.default, self.overrides = app, default, overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.default)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _too_large(scope, receive, send, limit)
                    return
        seen, exceeded, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app turned the aborted read into its own error (FastAPI: 400); 413 goes out below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _BodyTooLarge:
            pass
        if exceeded and not started:  # a chunked body (no Content-Length) that grew past the limit
            await _too_large(scope, receive, send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = JSONResponse({"detail": f"request body over {limit} bytes", "code": "too_large"}, status_code=413)
    await response(scope, receive, send)


def create_api(app: OneGrid) -> FastAPI:
    settings = app.settings
    api = OneGridAPI(title="OneGrid", version="0.2.0", description=DESCRIPTION, openapi_tags=TAGS)
    api.state.onegrid = app
    api.state.rate_limiter = RateLimiter()
    # Group commit of keyed machine intake (api/intake_writer.py): SQLite's writers take turns anyway.
    api.state.intake_writer = IntakeWriter(app.ctx, writers=1 if app.engine.dialect.name == "sqlite" else 2,
                                           gather_s=settings.intake_gather_ms / 1000)
    registry, latency = make_registry(app)
    api.state.metrics_registry = registry
    # Keyed machine intake past the framework when the request is the usual one (api/intake_fast.py).
    api.keyed_intake = KeyedIntake(app, api, body_limit=settings.api_max_body_bytes, latency=latency)

    api.add_middleware(ObserveLatency, latency=latency)
    body_limits = {"/api/v1/areas/import": settings.api_max_import_bytes,
                   "/api/v1/sync/events/batch": settings.api_max_sync_batch_bytes}
    if app.sandbox is not None:  # photo uploads of the sandbox console
        body_limits.update(console.BODY_LIMITS)
    api.add_middleware(BodyLimit, default=settings.api_max_body_bytes, overrides=body_limits)
    # Outermost: every log line of a request, even a 413's, carries its id; answered as X-Request-ID.
    api.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID", validator=is_sane_request_id,
                       generator=new_request_id)

    @api.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        if request.url.path.startswith(open311.PREFIX):
            return open311.error_response(open311.fmt_of(request), exc.status, exc.message, exc.headers)
        return error_response(exc)

    async def on_refusal(request: Request, exc: Exception) -> Response:
        # A read service's refusal (not visible, bad cursor or filter) answers as its ApiError would.
        return await on_api_error(request, refusal(exc))

    for refused in REFUSALS:
        api.add_exception_handler(refused, on_refusal)

    @api.exception_handler(open311.Open311Error)
    async def on_open311_error(request: Request, exc: open311.Open311Error) -> Response:
        return open311.error_response(open311.fmt_of(request), exc.code, exc.description, exc.headers)

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(open311.PREFIX):
            path_problem = any(err.get("loc", [None])[0] == "path" for err in exc.errors())
            code = 404 if path_problem else 400
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", []))
            return open311.error_response(open311.fmt_of(request), code, f"{where}: {first.get('msg', 'invalid')}")
        return JSONResponse({"detail": _plain(exc.errors()), "code": "invalid"}, status_code=422)

    api.include_router(ops.build_router(app, registry))
    api.include_router(open311_routes.router)
    api.include_router(v1.build_router())
    api.include_router(webhook.build_router())
    if app.sandbox is not None:  # sandbox mode only: with a bot token, nothing of /console exists
        api.include_router(console.build_router(app.sandbox))
    return api


def _plain(errors: Any) -> Any:
    """Validation errors without the raw input echoed back (it may be large or binary)."""
    out = []
    for err in errors:
        out.append({"loc": list(err.get("loc", [])), "msg": str(err.get("msg", "")), "type": err.get("type")})
    return out
