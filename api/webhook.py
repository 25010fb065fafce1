"""Inbound pushes: Telegram's webhook and the upstream platform's signed case pushes.

`POST /telegram/webhook` (webhook mode only): the secret header is compared in constant time
(401 otherwise); the raw update is committed to the store before the 200 goes back; processing
happens after, once per update_id (services/telegram_webhook.py).

`POST /api/v1/sync/push`: the upstream pushes Open311 service requests, signed with
HMAC-SHA256 over ``<timestamp>.<body>`` (headers X-OneGrid-Timestamp, X-OneGrid-Signature:
sha256=<hex>); a timestamp outside the allowed window is refused, so a captured push cannot be
replayed later, and applying the same request twice changes nothing more.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from api.deps import ApiError, CtxDep, OneGridDep
from api.schemas import PushAnswer
from services import sync_push, telegram_webhook, upstream

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024

telegram_secret = APIKeyHeader(name=SECRET_HEADER, auto_error=False, scheme_name="TelegramSecret",
                               description="The secret_token given to setWebhook")
push_signature = APIKeyHeader(name="X-OneGrid-Signature", auto_error=False, scheme_name="UpstreamSignature",
                              description="sha256=<hex HMAC-SHA256 over '<timestamp>.<body>'>")


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/telegram/webhook", tags=["telegram"], summary="Telegram updates (webhook mode)",
                 responses={401: {"description": "Wrong or missing secret token"},
                            400: {"description": "Not a Telegram update"},
                            404: {"description": "Webhook mode is off"},
                            413: {"description": "Body too large"}})
    async def telegram_update(
        request: Request, ctx: CtxDep, onegrid: OneGridDep,
        secret: Annotated[str | None, Depends(telegram_secret)] = None,
        update: Annotated[dict[str, Any] | None, Body(description="A Telegram Update object")] = None,
    ) -> JSONResponse:
        expected = ctx.settings.webhook_secret
        if not ctx.settings.webhook_url or expected is None:
            raise ApiError(404, "not_found", "webhook mode is off")
        if secret is None or not secrets.compare_digest(secret.encode(), expected.get_secret_value().encode()):
            raise ApiError(401, "bad_secret", "wrong or missing secret token")
        if update is None:
            raise ApiError(400, "bad_update", "the body must be a Telegram update")
        try:
            fresh = await asyncio.to_thread(telegram_webhook.store_update, ctx, payload=update)
        except telegram_webhook.BadUpdate as exc:
            raise ApiError(400, "bad_update", str(exc)) from None
        if fresh and onegrid.webhook_processor is not None:
            onegrid.webhook_processor.wake()
        return JSONResponse({"ok": True, "duplicate": not fresh})

    @router.post("/api/v1/sync/push", tags=["sync"], summary="Signed push of service requests from the upstream",
                 responses={401: {"description": "Bad signature or stale timestamp"},
                            404: {"description": "Pushes are not configured"},
                            413: {"description": "Body too large"},
                            422: {"description": "Not a request or a list of requests"}})
    async def upstream_push(
        request: Request, ctx: CtxDep,
        signature: Annotated[str | None, Depends(push_signature)] = None,
        requests: Annotated[list[dict[str, Any]] | dict[str, Any] | None, Body(
            description="Open311 service request(s): a request, a list, or {\"requests\": [...]}")] = None,
    ) -> PushAnswer:
        body = await request.body()
        try:
            outcomes = await asyncio.to_thread(
                sync_push.apply_upstream_push, ctx, body=body, timestamp=request.headers.get("X-OneGrid-Timestamp"),
                signature=signature)
        except sync_push.PushNotConfigured:
            raise ApiError(404, "not_found", "pushes from the upstream are not configured") from None
        except upstream.BadSignature as exc:
            raise ApiError(401, "bad_signature", str(exc)) from None
        except sync_push.MalformedPush as exc:
            if exc.problem == "not_json":
                raise ApiError(422, "malformed", "the body must be JSON") from None
            raise ApiError(422, "malformed",
                           "expected a request, a list of requests or {\"requests\": [...]}") from None
        return PushAnswer(outcomes=outcomes)

    return router
