"""/api/v1/exports: the key's cases as GeoJSON and CSV, streamed.

Filters are checked (404 for a foreign area, 422 for a bad filter) before the 200 starts streaming;
CSV cells that a spreadsheet would run as formulas are quoted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import V1_PREFIX, CtxDep, ReadKey
from api.params import AreaQ, CategoryQ, SourceQ, StatusQ, TimeQ, case_filter
from api.schemas import CasePublic
from api.views import case_public
from services import case_queries

router = APIRouter(prefix=V1_PREFIX)
ExportLimit = Annotated[int, Query(ge=1, le=100_000)]
EXPORT_COLUMNS = ("id", "number", "status", "source", "category_code", "grid_code", "lat", "lon", "address",
                  "description", "report_count", "created_at", "updated_at", "closed_at", "handle_due_at")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not is_number(text):
        return "'" + text
    return text


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def geojson_feature(case: CasePublic) -> dict[str, Any]:
    props = case.model_dump(mode="json", exclude={"lat", "lon"})
    return {"type": "Feature", "id": case.id, "geometry": {"type": "Point", "coordinates": [case.lon, case.lat]},
            "properties": props}


@router.get("/exports/cases.geojson", tags=["exports"], summary="Cases as a GeoJSON FeatureCollection",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/geo+json": {}}, "description": "FeatureCollection"},
                       404: {"description": "The area filter lies outside the key's area"}})
def export_geojson(principal: ReadKey, ctx: CtxDep, status: StatusQ = None,
                   category_code: CategoryQ = None, area_code: AreaQ = None, source: SourceQ = None,
                   created_from: TimeQ = None, created_to: TimeQ = None, updated_after: TimeQ = None,
                   limit: ExportLimit = 10_000) -> StreamingResponse:
    flt = case_filter(status, category_code, area_code, source, created_from, created_to, updated_after)
    case_queries.check_case_filter(ctx, principal=principal, flt=flt)  # 404/422 now, before the 200 streams

    def body() -> Iterator[bytes]:
        yield b'{"type":"FeatureCollection","features":['
        for i, view in enumerate(case_queries.iter_cases(ctx, principal=principal, flt=flt, limit=limit)):
            feature = geojson_feature(case_public(view, principal))
            yield (b"," if i else b"") + json.dumps(feature, ensure_ascii=False).encode()
        yield b"]}"

    return StreamingResponse(body(), media_type="application/geo+json")


@router.get("/exports/cases.csv", tags=["exports"], summary="Cases as CSV (UTF-8 with BOM for spreadsheets)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "CSV"},
                       404: {"description": "The area filter lies outside the key's area"}})
def export_csv(principal: ReadKey, ctx: CtxDep, status: StatusQ = None,
               category_code: CategoryQ = None, area_code: AreaQ = None, source: SourceQ = None,
               created_from: TimeQ = None, created_to: TimeQ = None, updated_after: TimeQ = None,
               limit: ExportLimit = 10_000) -> StreamingResponse:
    flt = case_filter(status, category_code, area_code, source, created_from, created_to, updated_after)
    case_queries.check_case_filter(ctx, principal=principal, flt=flt)

    def body() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        yield ("\ufeff" + buffer.getvalue()).encode()
        for view in case_queries.iter_cases(ctx, principal=principal, flt=flt, limit=limit):
            buffer.seek(0)
            buffer.truncate()
            row = case_public(view, principal).model_dump()
            writer.writerow([csv_cell(row[c]) for c in EXPORT_COLUMNS])
            yield buffer.getvalue().encode()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="cases.csv"'})
