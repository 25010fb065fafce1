"""The IETF Idempotency-Key rules around an unsafe /api/v1 route (the store side is services/idempotency.py).

What callers may rely on: without a key, `produce` simply runs; with one, a replay returns the first
answer (with `Idempotent-Replayed: true`), the same key with another body answers 422, a request
still in flight 409 with Retry-After. Refusals raised inside `produce` are answers too, so they are
stored and replayed; a 5xx or a crash leaves nothing behind, so a retry runs again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request, Response
from fastapi.responses import JSONResponse

from api.deps import REFUSALS, ApiError, error_response, refusal
from services import idempotency
from services.api_keys import Principal
from services.context import ServiceContext

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key",
    description="Optional (IETF draft). A replay within the key's lifetime returns the first answer; the same "
                "key with another body answers 422; while the first request runs, 409. Keys expire 24 h "
                "after first use (setting IDEMPOTENCY_TTL_HOURS; see the Idempotency-Expires header).",
)]
IDEMPOTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed Idempotency-Key"},
    409: {"description": "A request with this Idempotency-Key is still in flight, or the case changed"},
}


def json_answer(model: Any, status: int = 200) -> JSONResponse:
    """A Public model as a JSON response (so it can be stored for replays)."""
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


async def run_idempotent(request: Request, ctx: ServiceContext, principal: Principal, key: str | None,
                         produce: Callable[[], Awaitable[Response]]) -> Response:
    """Run `produce` under the Idempotency-Key rules (see the module docstring)."""
    if key is None:
        return await produce()
    body = await request.body()
    fp = idempotency.fingerprint(request.method, request.url.path, body)
    try:
        started = await asyncio.to_thread(idempotency.begin, ctx, api_key_id=principal.id, key=key, fingerprint=fp)
    except idempotency.IdempotencyError as exc:
        raise key_refusal(exc) from None
    if isinstance(started, idempotency.Replay):
        return replayed(ctx, started)
    try:
        try:
            response = await produce()
        except ApiError as exc:
            response = error_response(exc)
        except REFUSALS as exc:
            response = error_response(refusal(exc))
    except BaseException:
        await asyncio.to_thread(idempotency.abandon, ctx, record_id=started.record_id)
        raise
    if response.status_code >= 500:
        await asyncio.to_thread(idempotency.abandon, ctx, record_id=started.record_id)
    else:
        await asyncio.to_thread(idempotency.finish, ctx, record_id=started.record_id,
                                status_code=response.status_code, body=bytes(response.body).decode(),
                                content_type=response.media_type or "application/json")
    return with_expiry(ctx, response)


def key_refusal(exc: idempotency.IdempotencyError) -> ApiError:
    """The answer to a key that cannot be used (400, 422 or 409)."""
    if isinstance(exc, idempotency.BadKey):
        return ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters")
    if isinstance(exc, idempotency.KeyReused):
        return ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
    return ApiError(409, "idempotency_key_in_flight", "a request with this Idempotency-Key is in flight",
                    {"Retry-After": "1"})


def with_expiry(ctx: ServiceContext, response: Response) -> Response:
    response.headers["Idempotency-Expires"] = f"{ctx.settings.idempotency_ttl_hours * 3600}"
    return response


def replayed(ctx: ServiceContext, replay: idempotency.Replay) -> Response:
    """The stored first answer, marked as a replay."""
    return with_expiry(ctx, Response(content=replay.body, status_code=replay.status_code,
                                     media_type=replay.content_type, headers={"Idempotent-Replayed": "true"}))
