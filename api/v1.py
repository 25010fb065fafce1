"""The management and machine API under /api/v1: cases, intake, clear, actions, exports, areas, categories,
people, invitations, KPIs and sync.

Every route parses, checks the key (scope and area), calls one service, renders. A case outside
the key's area answers 404 exactly like a case that does not exist, and nothing changes.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from sqlmodel import select

from api.deps import (
    ERROR_RESPONSES,
    AdminKey,
    ApiError,
    CtxDep,
    CurrentKey,
    IntakeKey,
    ReadKey,
    SessionDep,
    WriteKey,
    error_response,
    not_found,
)
from api.queries import (
    EXPORT_COLUMNS,
    MAX_PAGE,
    CaseFilter,
    case_card,
    csv_cell,
    decode_cursor,
    encode_cursor,
    filtered_cases,
    geojson_feature,
    iter_cases,
    page_of_cases,
    page_of_people,
    person_detail,
    render_cases,
    visible_case,
    visible_person,
)
from api.schemas import (
    AreaPublic,
    CaseActionRequest,
    CaseClear,
    CaseCreate,
    CasePage,
    CasePublic,
    CaseUpdate,
    CaseWithTimeline,
    CategoryPatch,
    CategoryPublic,
    ClearAnswer,
    DeactivationAnswer,
    ImportAnswer,
    IntakeAnswer,
    IntakeRulePublic,
    IntakeRuleWrite,
    InvitationCreate,
    InvitationIssued,
    InvitationPage,
    InvitationPublic,
    KeyPublic,
    KpiGrid,
    KpiReport,
    PersonDetail,
    PersonPage,
    PersonRoleFilter,
    PhotoPublic,
    QuestionWrite,
    StaffRole,
    SyncAnswer,
)
from models.api import ClearRule
from models.lifecycle import Action, Actor, IllegalTransition, LifecycleError, NoteRequired, RoleNotAllowed
from models.tables import Area, CaseSource, Category, Invitation, Photo
from services import cases, idempotency, intake, invitations, kpi, upstream
from services.api_keys import Principal, area_in_scope, area_subtree
from services.areas import AreaImportError, import_geojson
from services.catalogue import CatalogueError, set_category_fields
from services.cases import CaseNotFound, OutsideGrid, StaleCase, UnknownCategory
from services.context import ServiceContext

log = logging.getLogger(__name__)

CaseId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]  # the store's integer ids
PhotoId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
PersonId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
InvitationId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
MAX_KPI_SPAN = timedelta(days=366)
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


def _json(model: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


async def run_idempotent(request: Request, ctx: ServiceContext, principal: Principal, key: str | None,
                         produce: Callable[[], Awaitable[Response]]) -> Response:
    """Run `produce` under the IETF Idempotency-Key rules (see services/idempotency.py)."""
    if key is None:
        return await produce()
    body = await request.body()
    fp = idempotency.fingerprint(request.method, request.url.path, body)
    try:
        started = await asyncio.to_thread(idempotency.begin, ctx, api_key_id=principal.id, key=key, fingerprint=fp)
    except idempotency.BadKey:
        raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters") from None
    except idempotency.KeyReused:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used with a different request") from None
    except idempotency.KeyInFlight:
        raise ApiError(409, "idempotency_key_in_flight", "a request with this Idempotency-Key is in flight",
                       {"Retry-After": "1"}) from None
    expires = f"{ctx.settings.idempotency_ttl_hours * 3600}"
    if isinstance(started, idempotency.Replay):
        return Response(content=started.body, status_code=started.status_code, media_type=started.content_type,
                        headers={"Idempotent-Replayed": "true", "Idempotency-Expires": expires})
    try:
        try:
            response = await produce()
        except ApiError as exc:
            response = error_response(exc)
    except BaseException:
        await asyncio.to_thread(idempotency.abandon, ctx, record_id=started.record_id)
        raise
    if response.status_code >= 500:
        await asyncio.to_thread(idempotency.abandon, ctx, record_id=started.record_id)
    else:
        await asyncio.to_thread(idempotency.finish, ctx, record_id=started.record_id,
                                status_code=response.status_code, body=bytes(response.body).decode(),
                                content_type=response.media_type or "application/json")
    response.headers["Idempotency-Expires"] = expires
    return response


def _utc(name: str, stamp: datetime | None) -> datetime | None:
    """A query time as UTC; 422 without a timezone or outside the representable range."""
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        raise ApiError(422, "bad_time", f"{name} needs a timezone, e.g. 2026-11-21T08:00:00+08:00")
    try:
        return stamp.astimezone(UTC)
    except OverflowError:
        raise ApiError(422, "bad_time", f"{name} is out of range") from None


def _case_filter(status: list[str] | None, category_code: str | None, area_code: str | None, source: str | None,
                 created_from: datetime | None, created_to: datetime | None,
                 updated_after: datetime | None) -> CaseFilter:
    created_from, created_to = _utc("created_from", created_from), _utc("created_to", created_to)
    updated_after = _utc("updated_after", updated_after)
    return CaseFilter(statuses=tuple(status or ()), category_code=category_code, area_code=area_code,
                      source=source, created_from=created_from, created_to=created_to, updated_after=updated_after)


StatusQ = Annotated[list[str] | None, Query(description="Repeat for several statuses")]
CategoryQ = Annotated[str | None, Query(max_length=64)]
AreaQ = Annotated[str | None, Query(max_length=64, description="Cases in this area's subtree")]
SourceQ = Annotated[str | None, Query(max_length=16)]
TimeQ = Annotated[datetime | None, Query()]


def _lifecycle_error(exc: LifecycleError) -> ApiError:
    if isinstance(exc, NoteRequired):
        return ApiError(422, "note_required", str(exc))
    if isinstance(exc, RoleNotAllowed):
        return ApiError(403, "role_not_allowed", str(exc))
    if isinstance(exc, IllegalTransition):
        return ApiError(409, "illegal_transition", str(exc))
    return ApiError(409, "refused", str(exc))


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

    # ------------------------------------------------------------------ who am I

    @router.get("/me", tags=["keys"], summary="The calling key: scopes, area, role")
    def me(principal: CurrentKey) -> KeyPublic:
        return KeyPublic(key_id=principal.key_id, name=principal.name, scopes=sorted(principal.scopes),
                         area_code=principal.area_code, acts_as=principal.acts_as.value,
                         rate_per_minute=principal.rate_per_minute)

    # ------------------------------------------------------------------ cases

    @router.get("/cases", tags=["cases"], summary="Cases in the key's area, newest first, with a cursor",
                responses={404: {"description": "The area filter lies outside the key's area"}})
    def list_cases(principal: ReadKey, session: SessionDep, status: StatusQ = None, category_code: CategoryQ = None,
                   area_code: AreaQ = None, source: SourceQ = None, created_from: TimeQ = None,
                   created_to: TimeQ = None, updated_after: TimeQ = None,
                   limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
                   cursor: Annotated[str | None, Query(max_length=200)] = None) -> CasePage:
        flt = _case_filter(status, category_code, area_code, source, created_from, created_to, updated_after)
        items, next_cursor = page_of_cases(session, principal, flt, limit=limit, cursor=cursor)
        return CasePage(items=items, next_cursor=next_cursor)

    @router.post(
        "/cases", tags=["intake"], status_code=201,
        summary="Machine intake: a camera, sensor or hotline event (folds repeats into the open case)",
        responses={**IDEMPOTENT_RESPONSES, 200: {"model": IntakeAnswer, "description": "Folded or repeated event"},
                   201: {"model": IntakeAnswer, "description": "A new case was opened"}},
    )
    async def intake_case(request: Request, ctx: CtxDep, principal: IntakeKey, body: CaseCreate,
                          idempotency_key: IdempotencyKey = None) -> Response:
        report = intake.MachineReport(
            source=CaseSource(body.source.value), event_id=body.source_event_id, device_id=body.device_id,
            category_code=body.category_code, lat=body.lat, lon=body.lon, description=body.description,
            address=body.address, media_urls=list(body.media_urls))

        async def produce() -> Response:
            try:
                result = await asyncio.to_thread(intake.intake_event, ctx, principal=principal, report=report)
            except UnknownCategory:
                raise ApiError(422, "unknown_category", f"unknown or inactive category {body.category_code!r}") from None
            except OutsideGrid:
                raise ApiError(422, "outside_grid", "the point lies outside every grid of the map") from None
            except intake.OutsideArea:
                raise ApiError(422, "outside_area", "the point lies outside this key's area") from None
            except intake.IntakeInProgress:
                raise ApiError(409, "in_flight", "this event is being processed", {"Retry-After": "1"}) from None
            case_view = await asyncio.to_thread(_render_one, ctx, principal, result.case)
            answer = IntakeAnswer(outcome=result.outcome, case=case_view)
            return _json(answer, 201 if result.outcome == "created" else 200)

        return await run_idempotent(request, ctx, principal, idempotency_key, produce)

    @router.get("/cases/{case_id}", tags=["cases"], summary="One case with its timeline",
                responses={404: {"description": "No such case in the key's area"}})
    def read_case(case_id: CaseId, principal: ReadKey, session: SessionDep) -> CaseWithTimeline:
        return case_card(session, principal, visible_case(session, principal, case_id))

    @router.patch("/cases/{case_id}", tags=["cases"], summary="Correct a case's description or address",
                  responses={404: {"description": "No such case in the key's area"}})
    def update_case(case_id: CaseId, body: CaseUpdate, principal: WriteKey, ctx: CtxDep) -> CasePublic:
        try:
            case = intake.update_case_details(ctx, principal=principal, case_id=case_id,
                                              description=body.description, address=body.address)
        except CaseNotFound:
            raise not_found("no such case") from None
        return _render_one(ctx, principal, case)

    @router.post("/cases/{case_id}/actions", tags=["cases"], summary="A lifecycle action as the key's role",
                 responses={**IDEMPOTENT_RESPONSES, 404: {"description": "No such case in the key's area"}})
    async def act_on_case(case_id: CaseId, body: CaseActionRequest, request: Request, principal: WriteKey,
                          ctx: CtxDep, idempotency_key: IdempotencyKey = None) -> Response:
        # Outside the key's area: 404 before the idempotency layer, so not even a key record is written.
        await asyncio.to_thread(_check_visible, ctx, principal, case_id)

        async def produce() -> Response:
            case = await asyncio.to_thread(_apply_action, ctx, principal, case_id, body)
            return _json(await asyncio.to_thread(_render_one, ctx, principal, case))

        return await run_idempotent(request, ctx, principal, idempotency_key, produce)

    @router.post("/cases/{case_id}/clear", tags=["intake"], summary="The source says the problem is gone (自动结案)",
                 responses={**IDEMPOTENT_RESPONSES, 404: {"description": "No such case in the key's area"}})
    async def clear_case(case_id: CaseId, request: Request, principal: IntakeKey, ctx: CtxDep,
                         body: Annotated[CaseClear | None, Body()] = None,
                         idempotency_key: IdempotencyKey = None) -> Response:
        await asyncio.to_thread(_check_visible, ctx, principal, case_id)

        async def produce() -> Response:
            try:
                result = await asyncio.to_thread(intake.clear_case, ctx, principal=principal, case_id=case_id,
                                                 note=body.note if body else None)
            except CaseNotFound:
                raise not_found("no such case") from None
            except intake.NotMachineCase:
                raise ApiError(409, "not_machine_case", "only cases opened by machine intake can be cleared") from None
            except StaleCase:
                raise ApiError(409, "stale", "the case kept changing; try again") from None
            view = await asyncio.to_thread(_render_one, ctx, principal, result.case)
            return _json(ClearAnswer(outcome=result.outcome, case=view))

        return await run_idempotent(request, ctx, principal, idempotency_key, produce)

    @router.get("/cases/{case_id}/photos", tags=["cases"], summary="Photos of a case",
                responses={404: {"description": "No such case in the key's area"}})
    def list_photos(case_id: CaseId, principal: ReadKey, session: SessionDep) -> list[PhotoPublic]:
        case = visible_case(session, principal, case_id)
        rows = session.exec(select(Photo).where(Photo.case_id == case.id).order_by(Photo.id)).all()
        return [PhotoPublic(id=p.id, purpose=p.purpose, width=p.width, height=p.height, created_at=p.created_at,
                            url=f"/api/v1/cases/{case.id}/photos/{p.id}") for p in rows]

    @router.get("/cases/{case_id}/photos/{photo_id}", tags=["cases"], summary="A photo (EXIF-free JPEG)",
                response_class=FileResponse,
                responses={200: {"content": {"image/jpeg": {}}, "description": "The photo"},
                           404: {"description": "No such photo of a case in the key's area"}})
    def get_photo(case_id: CaseId, photo_id: PhotoId, principal: ReadKey, session: SessionDep, ctx: CtxDep) -> FileResponse:
        case = visible_case(session, principal, case_id)
        photo = session.get(Photo, photo_id)
        if photo is None or photo.case_id != case.id:
            raise not_found("no such photo")
        root = Path(ctx.settings.data_dir).resolve()
        path = (root / photo.path).resolve()
        if root not in path.parents or not path.is_file():
            raise not_found("no such photo")
        return FileResponse(path, media_type="image/jpeg")

    # ------------------------------------------------------------------ exports

    @router.get("/exports/cases.geojson", tags=["exports"], summary="Cases as a GeoJSON FeatureCollection",
                response_class=StreamingResponse,
                responses={200: {"content": {"application/geo+json": {}}, "description": "FeatureCollection"},
                           404: {"description": "The area filter lies outside the key's area"}})
    def export_geojson(principal: ReadKey, ctx: CtxDep, status: StatusQ = None,
                       category_code: CategoryQ = None, area_code: AreaQ = None, source: SourceQ = None,
                       created_from: TimeQ = None, created_to: TimeQ = None, updated_after: TimeQ = None,
                       limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> StreamingResponse:
        flt = _case_filter(status, category_code, area_code, source, created_from, created_to, updated_after)
        _check_case_filter(ctx, principal, flt)  # 404/422 now, before the 200 starts streaming

        def body() -> Iterator[bytes]:
            yield b'{"type":"FeatureCollection","features":['
            with ctx.sessions() as s:
                for i, case in enumerate(iter_cases(s, principal, flt, limit=limit)):
                    yield (b"," if i else b"") + json.dumps(geojson_feature(case), ensure_ascii=False).encode()
            yield b"]}"

        return StreamingResponse(body(), media_type="application/geo+json")

    @router.get("/exports/cases.csv", tags=["exports"], summary="Cases as CSV (UTF-8 with BOM for spreadsheets)",
                response_class=StreamingResponse,
                responses={200: {"content": {"text/csv": {}}, "description": "CSV"},
                           404: {"description": "The area filter lies outside the key's area"}})
    def export_csv(principal: ReadKey, ctx: CtxDep, status: StatusQ = None,
                   category_code: CategoryQ = None, area_code: AreaQ = None, source: SourceQ = None,
                   created_from: TimeQ = None, created_to: TimeQ = None, updated_after: TimeQ = None,
                   limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> StreamingResponse:
        flt = _case_filter(status, category_code, area_code, source, created_from, created_to, updated_after)
        _check_case_filter(ctx, principal, flt)

        def body() -> Iterator[bytes]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_COLUMNS)
            yield ("\ufeff" + buffer.getvalue()).encode()
            with ctx.sessions() as s:
                for case in iter_cases(s, principal, flt, limit=limit):
                    buffer.seek(0)
                    buffer.truncate()
                    row = case.model_dump()
                    writer.writerow([csv_cell(row[c]) for c in EXPORT_COLUMNS])
                    yield buffer.getvalue().encode()

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="cases.csv"'})

    # ------------------------------------------------------------------ areas

    @router.get("/areas", tags=["areas"], summary="Areas in the key's subtree")
    def list_areas(principal: ReadKey, session: SessionDep,
                   level: Annotated[str | None, Query(pattern=r"^(city|district|street|grid)$")] = None,
                   parent_code: Annotated[str | None, Query(max_length=64)] = None,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[AreaPublic]:
        stmt = select(Area)
        if principal.area_code is not None:
            stmt = stmt.where(Area.code.in_(area_subtree(principal.area_code)))
        if level:
            stmt = stmt.where(Area.level == level)
        if parent_code:
            stmt = stmt.where(Area.parent_code == parent_code)
        rows = session.exec(stmt.order_by(Area.code).limit(limit)).all()
        return [AreaPublic(code=a.code, name=a.name, name_en=a.name_en, level=str(a.level),
                           parent_code=a.parent_code) for a in rows]

    @router.get("/areas/{code}", tags=["areas"], summary="One area",
                responses={404: {"description": "No such area in the key's subtree"}})
    def read_area(code: str, principal: ReadKey, session: SessionDep) -> AreaPublic:
        area = session.exec(select(Area).where(Area.code == code)).first()
        if area is None or not area_in_scope(session, principal, area.code):
            raise not_found("no such area")
        return AreaPublic(code=area.code, name=area.name, name_en=area.name_en, level=str(area.level),
                          parent_code=area.parent_code)

    @router.post("/areas/import", tags=["areas"], summary="Import or update areas from a GeoJSON FeatureCollection",
                 responses={400: {"description": "The file has problems; nothing was imported"}})
    async def import_areas(request: Request, principal: AdminKey, ctx: CtxDep,
                           body: Annotated[dict[str, Any], Body(description="GeoJSON FeatureCollection")]) -> ImportAnswer:
        if principal.area_code is not None:
            raise ApiError(403, "forbidden", "only a key without an area may import areas")
        onegrid = request.app.state.onegrid
        try:
            report = await asyncio.to_thread(import_geojson, ctx.sessions, body, now=ctx.clock.now(),
                                             grid_map=onegrid.ctx.grid_map)
        except AreaImportError as exc:
            raise ApiError(400, "import_refused", str(exc)[:4000]) from None
        return ImportAnswer(created=report.created, updated=report.updated, unchanged=report.unchanged,
                            by_level=dict(report.by_level), grid_map_version=report.grid_map_version)

    # ------------------------------------------------------------------ categories

    @router.get("/categories", tags=["categories"], summary="The category catalogue")
    def list_categories(principal: ReadKey, session: SessionDep, ctx: CtxDep) -> list[CategoryPublic]:
        rows = session.exec(select(Category).order_by(Category.kind, Category.code)).all()
        return [_category_public(session, ctx, c) for c in rows]

    @router.get("/categories/{code}", tags=["categories"], summary="One category with its intake rule and questions",
                responses={404: {"description": "No such category"}})
    def read_category(code: str, principal: ReadKey, session: SessionDep, ctx: CtxDep) -> CategoryPublic:
        row = session.exec(select(Category).where(Category.code == code)).first()
        if row is None:
            raise not_found("no such category")
        return _category_public(session, ctx, row)

    @router.patch("/categories/{code}", tags=["categories"], summary="Edit a category",
                  responses={404: {"description": "No such category"}})
    def patch_category(code: str, body: CategoryPatch, principal: AdminKey, ctx: CtxDep) -> CategoryPublic:
        fields = body.model_dump(exclude_none=True)
        if not fields:
            raise ApiError(422, "nothing_to_change", "give at least one field to change")
        try:
            set_category_fields(ctx.sessions, code, **fields)
        except CatalogueError as exc:
            if "unknown category" in str(exc):
                raise not_found("no such category") from None
            raise ApiError(422, "invalid_category", str(exc)) from None
        with ctx.sessions() as session:
            return _category_public(session, ctx, session.exec(select(Category).where(Category.code == code)).one())

    @router.put("/categories/{code}/intake-rule", tags=["categories"],
                summary="What a machine's clear does, and how long repeats fold",
                responses={404: {"description": "No such category"}})
    def put_intake_rule(code: str, body: IntakeRuleWrite, principal: AdminKey, ctx: CtxDep) -> IntakeRulePublic:
        try:
            row = intake.set_intake_rule(ctx, category_code=code, on_clear=ClearRule(body.on_clear),
                                         fold_window_s=body.fold_window_s)
        except UnknownCategory:
            raise not_found("no such category") from None
        return IntakeRulePublic(on_clear=row.on_clear, fold_window_s=row.fold_window_s)

    @router.put("/categories/{code}/questions", tags=["categories"],
                summary="The questions of a category (Open311 service-definition attributes)",
                responses={404: {"description": "No such category"}})
    def put_questions(code: str, body: list[QuestionWrite], principal: AdminKey, ctx: CtxDep) -> list[QuestionWrite]:
        if len({q.code for q in body}) != len(body):
            raise ApiError(422, "duplicate_question", "question codes must be unique")
        for q in body:
            if q.datatype.endswith("valuelist") and not q.values:
                raise ApiError(422, "missing_values", f"question {q.code!r} needs values")
        try:
            rows = intake.set_service_questions(ctx, category_code=code,
                                                questions=[q.model_dump(mode="json") for q in body])
        except UnknownCategory:
            raise not_found("no such category") from None
        return [QuestionWrite(code=r.code, datatype=r.datatype, required=r.required, description=r.description,
                              values=r.values) for r in rows]

    # ------------------------------------------------------------------ sync from a downstream OneGrid

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
            return _json(SyncAnswer(**answer))

        return await run_idempotent(request, ctx, principal, idempotency_key, produce)

    # ------------------------------------------------------------------ KPIs

    @router.get("/kpis", tags=["kpis"], summary="KPIs (综合评价) of an area over a period",
                description="The area defaults to the key's area (for a key without an area: the store's single "
                            "top-level area). The period is either `period` (today: local midnight → now; 7d, "
                            "30d: the last 7 or 30 days up to now; the default is 7d) or `start` (inclusive) and "
                            "`end` (exclusive, default now), ISO 8601 with a timezone, at most 366 days apart.",
                responses={404: {"description": "No such area in the key's subtree"}})
    def read_kpis(principal: ReadKey, session: SessionDep, ctx: CtxDep,
                  area_code: Annotated[str | None, Query(max_length=64, description="The area (its subtree)")] = None,
                  period: Annotated[Literal["today", "7d", "30d"] | None, Query()] = None,
                  start: TimeQ = None, end: TimeQ = None,
                  worst: Annotated[int, Query(ge=1, le=50, description="Rows of worst_grids")] = 5) -> KpiReport:
        now = ctx.clock.now()
        start, end = _utc("start", start), _utc("end", end)
        if period is not None and (start is not None or end is not None):
            raise ApiError(422, "bad_period", "give either period or start and end, not both")
        if start is None and end is not None:
            raise ApiError(422, "bad_period", "end needs a start")
        if start is not None:
            end = end or now
            if start >= end:
                raise ApiError(422, "bad_period", "start must be before end")
            if end - start > MAX_KPI_SPAN:
                raise ApiError(422, "bad_period", "start and end may be at most 366 days apart")
        else:
            start, end = kpi.period_bounds(period or "7d", now, ctx.timezone)
        code = area_code or principal.area_code or _top_area(session)
        if session.exec(select(Area.id).where(Area.code == code)).first() is None \
                or not area_in_scope(session, principal, code):
            raise not_found("no such area")
        k = kpi.compute(session, area_code=code, start=start, end=end, now=now, worst=worst)
        return KpiReport(
            area_code=k.area_code, start=k.start, end=k.end, registered=k.registered, closed=k.closed, due=k.due,
            closed_of_due=k.closed_of_due, closure_rate=k.closure_rate, closed_on_time=k.closed_on_time,
            on_time_rate=k.on_time_rate, reworked=k.reworked, rework_rate=k.rework_rate, extended=k.extended,
            extension_rate=k.extension_rate, accept_mean_h=k.accept_mean_h, accept_p90_h=k.accept_p90_h,
            close_mean_h=k.close_mean_h, close_p90_h=k.close_p90_h, ratings=len(k.ratings),
            satisfaction_mean=k.satisfaction_mean, answers=k.answers, dissatisfied=k.dissatisfied,
            dissatisfaction_rate=k.dissatisfaction_rate,
            worst_grids=[KpiGrid(grid_code=g.grid_code, open_overdue=g.open_overdue, due=g.due,
                                 closed_of_due=g.closed_of_due, closure_rate=g.closure_rate) for g in k.worst_grids])

    # ------------------------------------------------------------------ people

    @router.get("/people", tags=["people"], summary="People in the key's area, newest first, with a cursor",
                description="Staff (workers and supervisors) by default; `role=resident` lists residents, who have "
                            "no area and so are listed for keys without an area only. Personal data is masked "
                            "without the `pii` scope (see PersonDetail).",
                responses={404: {"description": "The area filter lies outside the key's area"}})
    def list_people(principal: ReadKey, session: SessionDep,
                    role: Annotated[PersonRoleFilter, Query()] = PersonRoleFilter.STAFF,
                    area_code: Annotated[str | None, Query(max_length=64, description="People in this area's subtree")] = None,
                    active: bool | None = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
                    cursor: Annotated[str | None, Query(max_length=200)] = None) -> PersonPage:
        items, next_cursor = page_of_people(session, principal, role=role, area_code=area_code, active=active,
                                            limit=limit, cursor=cursor)
        return PersonPage(items=items, next_cursor=next_cursor)

    @router.get("/people/{person_id}", tags=["people"], summary="One person",
                responses={404: {"description": "No such person in the key's area"}})
    def read_person(person_id: PersonId, principal: ReadKey, session: SessionDep) -> PersonDetail:
        return person_detail(visible_person(session, principal, person_id), principal)

    @router.post("/people/{person_id}/deactivate", tags=["people"],
                 summary="Deactivate a worker: no new orders; held orders and open offers go back to dispatch",
                 description="The worker is told, naming this key. Work already submitted stays for verification.",
                 responses={**IDEMPOTENT_RESPONSES,
                            404: {"description": "No such person in the key's area"},
                            409: {"description": "Not a worker, already inactive, or an Idempotency-Key in flight"}})
    async def deactivate_person(person_id: PersonId, request: Request, principal: AdminKey, ctx: CtxDep,
                                idempotency_key: IdempotencyKey = None) -> Response:
        await asyncio.to_thread(_check_person_visible, ctx, principal, person_id)

        async def produce() -> Response:
            try:
                result = await asyncio.to_thread(
                    invitations.deactivate_worker_for_office, ctx, worker_id=person_id, within=principal.area_code,
                    actor=Actor(principal.acts_as), by_name=principal.name)
            except invitations.PersonNotFound:
                raise not_found("no such person") from None
            except invitations.NotAllowed:
                raise ApiError(409, "not_a_worker", "only grid workers can be deactivated") from None
            except invitations.AlreadyInactive:
                raise ApiError(409, "already_inactive", "this worker is already inactive") from None
            except StaleCase:
                raise ApiError(409, "stale", "the worker's cases kept changing; try again") from None
            person = await asyncio.to_thread(_person_view, ctx, principal, person_id)
            return _json(DeactivationAnswer(person=person, returned=result.returned, withdrawn=result.withdrawn))

        return await run_idempotent(request, ctx, principal, idempotency_key, produce)

    # ------------------------------------------------------------------ invitations

    @router.post("/invitations", tags=["invitations"], status_code=201,
                 summary="Invite a worker or supervisor: a one-time Telegram deep link",
                 description="The link is in this answer only (the store keeps a hash of its token), so this "
                             "route takes no Idempotency-Key: a retry issues a new invitation; revoke the unused "
                             "one. The answer is marked `Cache-Control: no-store`.",
                 responses={404: {"description": "No such area in the key's subtree"},
                            503: {"description": "The bot's username is unknown (set ONEGRID_BOT_USERNAME)"}})
    async def create_invitation(body: InvitationCreate, request: Request, principal: AdminKey,
                                ctx: CtxDep) -> InvitationIssued:
        await asyncio.to_thread(_check_area_visible, ctx, principal, body.area_code)
        if body.role is StaffRole.WORKER and not body.department_code:
            raise ApiError(422, "department_required", "a worker needs department_code: orders go to departments")
        username = await _bot_username(request.app.state.onegrid)  # before issuing: no link that cannot be shown
        try:
            issued = await asyncio.to_thread(
                invitations.create_invitation, ctx, role=body.role.value, area_code=body.area_code,
                department_code=body.department_code,
                ttl=timedelta(hours=body.valid_hours) if body.valid_hours else None)
        except invitations.BadInvitationRequest as exc:
            raise ApiError(422, "invalid_invitation", str(exc)) from None
        answer = InvitationIssued(
            id=issued.invitation_id, role=issued.role.value, area_code=issued.area_code,
            department_code=issued.department_code, expires_at=issued.expires_at, state="open",
            created_at=issued.created_at,
            link=invitations.invitation_link(username, issued.token))
        return JSONResponse(answer.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"})

    @router.get("/invitations", tags=["invitations"], summary="Invitations in the key's area, newest first (no tokens)",
                responses={404: {"description": "The area filter lies outside the key's area"}})
    def list_invitations(principal: AdminKey, ctx: CtxDep,
                         area_code: Annotated[str | None, Query(max_length=64,
                                                                description="Invitations to this area's subtree")] = None,
                         state: Annotated[invitations.InvitationState | None, Query()] = None,
                         limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
                         cursor: Annotated[str | None, Query(max_length=200)] = None) -> InvitationPage:
        within = principal.area_code
        if area_code:
            with ctx.sessions() as session:
                if not area_in_scope(session, principal, area_code):
                    raise not_found("no such area")
            within = area_code
        rows = invitations.list_invitations(ctx, within=within, state=state, limit=limit + 1,
                                            before_id=decode_cursor(cursor) if cursor else None)
        more = len(rows) > limit
        rows = rows[:limit]
        now = ctx.clock.now()
        return InvitationPage(items=[_invitation_public(r, now) for r in rows],
                              next_cursor=encode_cursor(rows[-1].id) if more and rows else None)

    @router.post("/invitations/{invitation_id}/revoke", tags=["invitations"],
                 summary="Revoke an unused invitation: its link is refused from now on",
                 description="Revoking an expired (or already revoked) invitation changes nothing.",
                 responses={**IDEMPOTENT_RESPONSES,
                            404: {"description": "No such invitation in the key's area"},
                            409: {"description": "The invitation was used already, or an Idempotency-Key in flight"}})
    async def revoke_invitation(invitation_id: InvitationId, request: Request, principal: AdminKey, ctx: CtxDep,
                                idempotency_key: IdempotencyKey = None) -> Response:
        await asyncio.to_thread(_check_invitation_visible, ctx, principal, invitation_id)

        async def produce() -> Response:
            try:
                row = await asyncio.to_thread(invitations.revoke_invitation, ctx, invitation_id=invitation_id,
                                              within=principal.area_code)
            except invitations.InvitationNotFound:
                raise not_found("no such invitation") from None
            except invitations.InvitationUsed:
                raise ApiError(409, "invitation_used", "this invitation was used already") from None
            return _json(_invitation_public(row, ctx.clock.now()))

        return await run_idempotent(request, ctx, principal, idempotency_key, produce)

    return router


def _check_case_filter(ctx: ServiceContext, principal: Principal, flt: CaseFilter) -> None:
    # In a session of its own, closed before the export streams: on SQLite every transaction holds the
    # write lock (BEGIN IMMEDIATE), so a request session left open would block the streaming reader.
    with ctx.sessions() as session:
        filtered_cases(session, principal, flt)


def _top_area(session: Any) -> str:
    """The store's single top-level area: the default KPI area of a key without an area."""
    roots = session.exec(select(Area.code).where(Area.parent_code.is_(None)).limit(2)).all()
    if len(roots) != 1:
        raise ApiError(422, "area_required", "give area_code: the store has no single top-level area")
    return roots[0]


def _check_area_visible(ctx: ServiceContext, principal: Principal, area_code: str) -> None:
    with ctx.sessions() as session:
        if session.exec(select(Area.id).where(Area.code == area_code)).first() is None \
                or not area_in_scope(session, principal, area_code):
            raise not_found("no such area")


def _check_person_visible(ctx: ServiceContext, principal: Principal, person_id: int) -> None:
    with ctx.sessions() as session:
        visible_person(session, principal, person_id)


def _person_view(ctx: ServiceContext, principal: Principal, person_id: int) -> PersonDetail:
    with ctx.sessions() as session:
        return person_detail(visible_person(session, principal, person_id), principal)


def _check_invitation_visible(ctx: ServiceContext, principal: Principal, invitation_id: int) -> None:
    with ctx.sessions() as session:
        row = session.get(Invitation, invitation_id)
        if row is None or not area_in_scope(session, principal, row.area_code):
            raise not_found("no such invitation")


def _invitation_public(row: Invitation, now: datetime) -> InvitationPublic:
    return InvitationPublic(id=row.id, role=str(row.role), area_code=row.area_code,
                            department_code=row.department_code, expires_at=row.expires_at,
                            state=invitations.invitation_state(row, now).value, created_at=row.created_at,
                            revoked_at=row.revoked_at, used_at=row.used_at, used_by_id=row.used_by_id)


async def _bot_username(onegrid: Any) -> str:
    """ONEGRID_BOT_USERNAME, else the sandbox bot's, else the bot's own answer to getMe; 503 when none answers."""
    if onegrid.settings.bot_username:
        return onegrid.settings.bot_username.lstrip("@")
    if onegrid.sandbox is not None:
        from bot.sandbox import BOT_USERNAME

        return BOT_USERNAME
    if onegrid.bot is not None:
        try:
            me = await asyncio.wait_for(onegrid.bot.me(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - any failure: the link cannot name the bot
            log.warning("getMe failed while issuing an invitation: %s", exc)
        else:
            if me.username:
                return me.username
    raise ApiError(503, "bot_unknown", "the bot's username is unknown; set ONEGRID_BOT_USERNAME")


def _render_one(ctx: ServiceContext, principal: Principal, case: Any) -> CasePublic:
    with ctx.sessions() as session:
        return render_cases(session, principal, [case])[0]


def _check_visible(ctx: ServiceContext, principal: Principal, case_id: int) -> None:
    with ctx.sessions() as session:
        visible_case(session, principal, case_id)


def _apply_action(ctx: ServiceContext, principal: Principal, case_id: int, body: CaseActionRequest) -> Any:
    _check_visible(ctx, principal, case_id)  # 404 outside the area: before anything is written
    try:
        return cases.apply_action(ctx, case_id=case_id, action=Action(body.action.value),
                                  actor=Actor(principal.acts_as), note=body.note,
                                  expected_version=body.expected_version)
    except CaseNotFound:
        raise not_found("no such case") from None
    except StaleCase:
        raise ApiError(409, "stale", "the case changed since expected_version; reload it") from None
    except LifecycleError as exc:
        raise _lifecycle_error(exc) from None


def _category_public(session: Any, ctx: ServiceContext, row: Category) -> CategoryPublic:
    from models.api import IntakeRule

    rule = session.get(IntakeRule, row.code)
    on_clear = rule.on_clear if rule else ctx.settings.intake_default_clear_rule
    window = rule.fold_window_s if rule else ctx.settings.intake_fold_window_s
    questions = intake.service_questions(session, row.code)
    return CategoryPublic(
        code=row.code, kind=row.kind, name=row.name, name_en=row.name_en, department_code=row.department_code,
        extra_departments=list(row.extra_departments or []), accept_sla_minutes=row.accept_sla_minutes,
        handle_sla_minutes=row.handle_sla_minutes, duplicate_radius_m=row.duplicate_radius_m,
        photo_required=row.photo_required, active=row.active,
        intake_rule=IntakeRulePublic(on_clear=on_clear, fold_window_s=window),
        questions=[QuestionWrite(code=q.code, datatype=q.datatype, required=q.required, description=q.description,
                                 values=q.values) for q in questions])
