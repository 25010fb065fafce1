"""/api/v1/warnings: warnings (预警) to an area's on-duty workers, issued by the upstream or an operator."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api.campaign_schemas import WarningCreate, WarningPublic
from api.params import StoreId
from api.deps import V1_PREFIX, ApiError, CtxDep, ReadKey, WriteKey, not_found
from services import area_queries, warnings

router = APIRouter(prefix=V1_PREFIX)


def _public(state: warnings.WarningState) -> WarningPublic:
    return WarningPublic(id=state.id, area_code=state.area_code, level=state.level, text=state.text, drill=state.drill,
                         status=state.status.value, issued_at=state.issued_at, recipients=state.total,
                         acknowledged=state.acknowledged, not_acknowledged=state.total - state.acknowledged)


@router.post("/warnings", tags=["warnings"], status_code=201, summary="Issue a warning to an area",
             description="Every on-duty worker of the area (and the areas below it) gets it at once with an "
                         "Acknowledge button; those who have not acknowledged are reminded every "
                         "ONEGRID_WARNING_REMINDER_MINUTES and the area's supervisors get their names.",
             responses={404: {"description": "No such area in the key's subtree"}})
async def issue_warning(body: WarningCreate, principal: WriteKey, ctx: CtxDep) -> WarningPublic:
    await asyncio.to_thread(area_queries.ensure_area_visible, ctx, principal=principal, area_code=body.area_code)
    try:
        issued = await asyncio.to_thread(warnings.issue_warning, ctx, area_code=body.area_code, level=body.level,
                                         text=body.text, drill=body.drill)
    except warnings.UnknownArea:
        raise not_found("area") from None
    except warnings.EmptyText:
        raise ApiError(422, "empty_text", "the warning needs a text") from None
    return _public(await asyncio.to_thread(warnings.warning_state, ctx, warning_id=issued.id))


async def _visible(ctx: CtxDep, principal: ReadKey, warning_id: StoreId) -> warnings.WarningState:
    try:
        state = await asyncio.to_thread(warnings.warning_state, ctx, warning_id=warning_id)
    except warnings.WarningNotFound:
        raise not_found("warning") from None
    await asyncio.to_thread(area_queries.ensure_area_visible, ctx, principal=principal, area_code=state.area_code)
    return state


@router.get("/warnings/{warning_id}", tags=["warnings"], summary="A warning and how many acknowledged it",
            responses={404: {"description": "No such warning in the key's subtree"}})
async def read_warning(warning_id: StoreId, principal: ReadKey, ctx: CtxDep) -> WarningPublic:
    return _public(await _visible(ctx, principal, warning_id))


@router.post("/warnings/{warning_id}/end", tags=["warnings"], summary="End a warning: no more reminders",
             responses={404: {"description": "No such warning in the key's subtree"}})
async def end_warning(warning_id: StoreId, principal: WriteKey, ctx: CtxDep) -> WarningPublic:
    await _visible(ctx, principal, warning_id)
    return _public(await asyncio.to_thread(warnings.end_warning, ctx, warning_id=warning_id))
