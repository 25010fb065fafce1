"""/api/v1/sync/events: one event of a downstream OneGrid's case, sent by its outbox relay.

(The upstream's signed pushes, `/api/v1/sync/push`, are in api/webhook.py with the other inbound pushes.)
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from api.deps import V1_PREFIX, ApiError, CtxDep, IntakeKey, not_found
from api.idempotent import IDEMPOTENT_RESPONSES, IdempotencyKey, json_answer, run_idempotent
from api.schemas import SyncAnswer
from services import upstream
from services.cases import OutsideGrid, UnknownCategory

router = APIRouter(prefix=V1_PREFIX)


@router.post("/sync/events", tags=["sync"], summary="One event of a downstream OneGrid's case (its outbox relay)",
             responses={**IDEMPOTENT_RESPONSES, 404: {"description": "The case lies outside the key's area"}})
async def sync_event(request: Request, principal: IntakeKey, ctx: CtxDep,
                     event: Annotated[dict[str, Any], Body()],
                     idempotency_key: IdempotencyKey = None) -> Response:
    async def produce() -> Response:
        try:
            answer = await asyncio.to_thread(upstream.apply_downstream_event, ctx, principal=principal, event=event)
        except upstream.NotVisible:
            raise not_found("no such case") from None
        except upstream.SyncRefused as exc:
            raise ApiError(409, "out_of_order" if isinstance(exc, upstream.OutOfOrder) else "diverged",
                           str(exc), {"Retry-After": "1"}) from None
        except UnknownCategory as exc:
            raise ApiError(422, "unknown_category", f"unknown or inactive category {str(exc)!r}") from None
        except OutsideGrid:
            raise ApiError(422, "outside_grid", "the point lies outside every grid of the map") from None
        except ValueError as exc:
            raise ApiError(422, "malformed_event", str(exc)[:500]) from None
        return json_answer(SyncAnswer(**answer))

    return await run_idempotent(request, ctx, principal, idempotency_key, produce)
