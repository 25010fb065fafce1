"""/api/v1/sync/events: a downstream OneGrid's case events, sent by its outbox relay (one, or a batch).

(The upstream's signed pushes, `/api/v1/sync/push`, are in api/webhook.py with the other inbound pushes.)
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import V1_PREFIX, ApiError, CtxDep, IntakeKey, not_found
from api.idempotent import IDEMPOTENT_RESPONSES, IdempotencyKey, json_answer, run_idempotent
from api.schemas import SyncAnswer
from services import upstream
from services.cases import OutsideGrid, UnknownCategory

router = APIRouter(prefix=V1_PREFIX)
MAX_BATCH = 1000  # events per batch request


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


class SyncBatch(BaseModel):
    """An ordered batch of events, each the document `POST /api/v1/sync/events` takes."""

    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class SyncEventResult(BaseModel):
    event_id: str | None = None
    status: Literal["accepted", "duplicate", "rejected"]
    service_request_id: str | None = Field(None, description="The case here (accepted and duplicate)")
    number: str | None = Field(None, description="The case's number here (accepted and duplicate)")
    case_status: str | None = Field(None, description="The case here after this event (accepted and duplicate)")
    reason: str | None = Field(None, description="Why it was rejected: malformed_event, out_of_order, diverged, "
                                                 "blocked (an earlier event of its case here was rejected), "
                                                 "not_visible, unknown_category, outside_grid")
    message: str | None = None
    retryable: bool | None = Field(None, description="Whether sending the rejected event again later may work")


class SyncBatchAnswer(BaseModel):
    results: list[SyncEventResult] = Field(description="One per event, in the order sent")
    accepted: int
    duplicate: int
    rejected: int


@router.post("/sync/events/batch", tags=["sync"], response_model=SyncBatchAnswer,
             summary="An ordered batch of a downstream OneGrid's case events, with a result per event",
             description="Events apply in order per case, each once: an event already applied answers "
                         "`duplicate`, so a batch sent again is safe. A rejected event does not hold back "
                         "other cases; the later events of its own case in the batch are rejected as "
                         "`blocked`. The answer is 200 whenever the batch itself was well formed.",
             responses={**IDEMPOTENT_RESPONSES, 422: {"description": "Not a batch: `events` missing, empty, "
                                                                     "over 1,000, or holding a non-object"}})
async def sync_events_batch(request: Request, principal: IntakeKey, ctx: CtxDep, batch: SyncBatch,
                            idempotency_key: IdempotencyKey = None) -> Response:
    async def produce() -> Response:
        try:
            results = await asyncio.to_thread(upstream.apply_downstream_batch, ctx, principal=principal,
                                              events=batch.events)
        except upstream.BatchConflict as exc:
            raise ApiError(409, "batch_conflict", str(exc), {"Retry-After": "1"}) from None
        counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate", "rejected")}
        answer = SyncBatchAnswer(results=[SyncEventResult(**r) for r in results], **counts)
        return JSONResponse(answer.model_dump(mode="json", exclude_none=True))

    return await run_idempotent(request, ctx, principal, idempotency_key, produce)
