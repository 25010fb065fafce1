"""/api/v1/areas: the map (city, districts, streets, grids) in the key's subtree, and GeoJSON imports."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api.deps import V1_PREFIX, AdminKey, ApiError, CtxDep, ReadKey
from api.schemas import AreaPublic, ImportAnswer
from api.views import area_public
from services import area_queries
from services.areas import AreaImportError, import_geojson

router = APIRouter(prefix=V1_PREFIX)


@router.get("/areas", tags=["areas"], summary="Areas in the key's subtree")
def list_areas(principal: ReadKey, ctx: CtxDep,
               level: Annotated[str | None, Query(pattern=r"^(city|district|street|grid)$")] = None,
               parent_code: Annotated[str | None, Query(max_length=64)] = None,
               limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[AreaPublic]:
    rows = area_queries.list_areas(ctx, principal=principal, level=level, parent_code=parent_code, limit=limit)
    return [area_public(a) for a in rows]


@router.get("/areas/{code}", tags=["areas"], summary="One area",
            responses={404: {"description": "No such area in the key's subtree"}})
def read_area(code: str, principal: ReadKey, ctx: CtxDep) -> AreaPublic:
    return area_public(area_queries.read_area(ctx, principal=principal, code=code))


@router.post("/areas/import", tags=["areas"], summary="Import or update areas from a GeoJSON FeatureCollection",
             responses={400: {"description": "The file has problems; nothing was imported"}})
async def import_areas(principal: AdminKey, ctx: CtxDep,
                       body: Annotated[dict[str, Any], Body(description="GeoJSON FeatureCollection")]) -> ImportAnswer:
    if principal.area_code is not None:
        raise ApiError(403, "forbidden", "only a key without an area may import areas")
    try:
        report = await asyncio.to_thread(import_geojson, ctx.sessions, body, now=ctx.clock.now(),
                                         grid_map=ctx.grid_map)
    except AreaImportError as exc:
        raise ApiError(400, "import_refused", str(exc)[:4000]) from None
    return ImportAnswer(created=report.created, updated=report.updated, unchanged=report.unchanged,
                        by_level=dict(report.by_level), grid_map_version=report.grid_map_version)
