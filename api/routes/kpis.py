"""/api/v1/kpis: KPIs (综合评价) of an area over a period."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import V1_PREFIX, ApiError, CtxDep, ReadKey
from api.params import TimeQ, utc
from api.schemas_kpis import KpiReport
from api.views import kpi_report
from services import area_queries

router = APIRouter(prefix=V1_PREFIX)
MAX_KPI_SPAN = timedelta(days=366)


@router.get("/kpis", tags=["kpis"], summary="KPIs (综合评价) of an area over a period",
            description="The area defaults to the key's area (for a key without an area: the store's single "
                        "top-level area). The period is either `period` (today: local midnight → now; 7d, "
                        "30d: the last 7 or 30 days up to now; the default is 7d) or `start` (inclusive) and "
                        "`end` (exclusive, default now), ISO 8601 with a timezone, at most 366 days apart.",
            responses={404: {"description": "No such area in the key's subtree"}})
def read_kpis(principal: ReadKey, ctx: CtxDep,
              area_code: Annotated[str | None, Query(max_length=64, description="The area (its subtree)")] = None,
              period: Annotated[Literal["today", "7d", "30d"] | None, Query()] = None,
              start: TimeQ = None, end: TimeQ = None,
              worst: Annotated[int, Query(ge=1, le=50, description="Rows of worst_grids")] = 5) -> KpiReport:
    start, end = utc("start", start), utc("end", end)
    if period is not None and (start is not None or end is not None):
        raise ApiError(422, "bad_period", "give either period or start and end, not both")
    if start is None and end is not None:
        raise ApiError(422, "bad_period", "end needs a start")
    if start is not None:
        until = end or ctx.clock.now()
        if start >= until:
            raise ApiError(422, "bad_period", "start must be before end")
        if until - start > MAX_KPI_SPAN:
            raise ApiError(422, "bad_period", "start and end may be at most 366 days apart")
        end = until
    try:
        report = area_queries.area_kpis(ctx, principal=principal, area_code=area_code, period=period, start=start,
                                        end=end, worst=worst)
    except area_queries.NoSingleTopArea:
        raise ApiError(422, "area_required", "give area_code: the store has no single top-level area") from None
    return kpi_report(report)
