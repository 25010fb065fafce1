"""/api/v1/cases: list, read with timeline, correct, lifecycle actions, photos; machine intake and clears.

A case outside the key's area answers 404 exactly like a case that does not exist, and nothing changes:
unsafe routes check visibility before the idempotency layer, so not even a key record is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import FileResponse

from api.deps import V1_PREFIX, ApiError, CtxDep, IntakeKey, ReadKey, WriteKey, error_response, not_found
from api.idempotent import (
    IDEMPOTENT_RESPONSES,
    IdempotencyKey,
    json_answer,
    key_refusal,
    replayed,
    run_idempotent,
    with_expiry,
)
from api.params import AreaQ, CaseId, CategoryQ, Cursor, PageLimit, PhotoId, SourceQ, StatusQ, TimeQ, case_filter
from api.schemas import (
    CaseActionRequest,
    CaseClear,
    CaseCreate,
    CasePage,
    CasePublic,
    CaseUpdate,
    CaseWithTimeline,
    ClearAnswer,
    IntakeAnswer,
    PhotoPublic,
)
from api.views import case_public, case_with_timeline, photo_public
from models.lifecycle import Action, IllegalTransition, LifecycleError, NoteRequired, RoleNotAllowed
from models.tables import CaseSource
from services import case_commands, case_queries, idempotency, intake
from services.case_ending import MergeTargetInvalid
from services.context import ServiceContext
from services.intake_batch import KeyedEvent
from services.office_actions import NobodyAvailable
from services.api_keys import Principal
from services.cases import CaseError, CaseNotFound, OutsideGrid, StaleCase, UnknownCategory

if TYPE_CHECKING:
    from api.intake_writer import IntakeWriter

router = APIRouter(prefix=V1_PREFIX)
INTAKE_PATH = f"{V1_PREFIX}/cases"
NOT_IN_AREA: dict[int | str, dict[str, str]] = {404: {"description": "No such case in the key's area"}}


_MERGE_REFUSALS = {
    "unknown": "merge needs merge_into_id: an open case in the key's area",
    "outside": "merge needs merge_into_id: an open case in the key's area",
    "same": "a case cannot be merged into itself",
    "not_open": "the case to merge into is not open",
}


def lifecycle_refusal(exc: LifecycleError) -> ApiError:
    if isinstance(exc, NoteRequired):
        return ApiError(422, "note_required", str(exc))
    if isinstance(exc, RoleNotAllowed):
        return ApiError(403, "role_not_allowed", str(exc))
    if isinstance(exc, IllegalTransition):
        return ApiError(409, "illegal_transition", str(exc))
    return ApiError(409, "refused", str(exc))


@router.get("/cases", tags=["cases"], summary="Cases in the key's area, newest first, with a cursor",
            responses={404: {"description": "The area filter lies outside the key's area"}})
def list_cases(principal: ReadKey, ctx: CtxDep, status: StatusQ = None, category_code: CategoryQ = None,
               area_code: AreaQ = None, source: SourceQ = None, created_from: TimeQ = None,
               created_to: TimeQ = None, updated_after: TimeQ = None, limit: PageLimit = 50,
               cursor: Cursor = None) -> CasePage:
    flt = case_filter(status, category_code, area_code, source, created_from, created_to, updated_after)
    page = case_queries.list_cases(ctx, principal=principal, flt=flt, limit=limit, cursor=cursor)
    return CasePage(items=[case_public(v, principal) for v in page.items], next_cursor=page.next_cursor)


@router.post(
    "/cases", tags=["intake"], status_code=201,
    summary="Machine intake: a camera, sensor or hotline event (folds repeats into the open case)",
    responses={**IDEMPOTENT_RESPONSES, 200: {"model": IntakeAnswer, "description": "Folded or repeated event"},
               201: {"model": IntakeAnswer, "description": "A new case was opened"}},
)
async def intake_case(request: Request, ctx: CtxDep, principal: IntakeKey, body: CaseCreate,
                      idempotency_key: IdempotencyKey = None) -> Response:
    report = machine_report(body)
    if idempotency_key is None:
        try:
            outcome = await asyncio.to_thread(case_commands.intake_event, ctx, principal=principal, report=report)
        except CaseError as exc:
            raise intake_refusal(exc) from None
        return intake_answer(principal)(outcome)
    return await write_keyed(request.app.state.intake_writer, ctx, principal, report,
                             key=idempotency_key, body=await request.body())


def machine_report(body: CaseCreate) -> intake.MachineReport:
    return intake.MachineReport(
        source=CaseSource(body.source.value), event_id=body.source_event_id, device_id=body.device_id,
        category_code=body.category_code, lat=body.lat, lon=body.lon, description=body.description,
        address=body.address, media_urls=list(body.media_urls), drill=body.drill)


def intake_answer(principal: Principal) -> Callable[[case_commands.CaseOutcome | CaseError], Response]:
    """How an intake's outcome answers: 201 for a new case, 200 for a folded or repeated event, else the refusal."""

    def answer(result: case_commands.CaseOutcome | CaseError) -> Response:
        if isinstance(result, CaseError):
            return error_response(intake_refusal(result))
        return json_answer(IntakeAnswer(outcome=result.outcome, case=case_public(result.view, principal)),
                           201 if result.outcome == "created" else 200)

    return answer


async def write_keyed(writer: IntakeWriter, ctx: ServiceContext, principal: Principal,
                      report: intake.MachineReport, *, key: str, body: bytes) -> Response:
    """A keyed machine event written by the group commit (api/intake_writer.py): the key's record, the
    case and the stored answer in one transaction. Raises ApiError for a key that cannot be used or an
    event still in flight; `api/intake_fast.py` calls it too, for requests it takes past the framework."""
    fp = idempotency.fingerprint("POST", INTAKE_PATH, body)
    try:
        idempotency.check_key(key)
        answered = await writer.write(KeyedEvent(
            principal=principal, report=report, key=key, fingerprint=fp, answer=intake_answer(principal)))
    except idempotency.IdempotencyError as exc:
        raise key_refusal(exc) from None
    except CaseError as exc:  # IntakeInProgress: the event kept losing a race; nothing stored, so retry
        raise intake_refusal(exc) from None
    if isinstance(answered, idempotency.Replay):
        return replayed(ctx, answered)
    return with_expiry(ctx, answered)


def intake_refusal(exc: CaseError) -> ApiError:
    if isinstance(exc, UnknownCategory):
        return ApiError(422, "unknown_category", f"unknown or inactive category {str(exc)!r}")
    if isinstance(exc, OutsideGrid):
        return ApiError(422, "outside_grid", "the point lies outside every grid of the map")
    if isinstance(exc, intake.OutsideArea):
        return ApiError(422, "outside_area", "the point lies outside this key's area")
    if isinstance(exc, intake.IntakeInProgress):
        return ApiError(409, "in_flight", "this event is being processed", {"Retry-After": "1"})
    return ApiError(422, "refused", str(exc))


@router.get("/cases/{case_id}", tags=["cases"], summary="One case with its timeline", responses=NOT_IN_AREA)
def read_case(case_id: CaseId, principal: ReadKey, ctx: CtxDep) -> CaseWithTimeline:
    return case_with_timeline(case_queries.read_case(ctx, principal=principal, case_id=case_id), principal)


@router.patch("/cases/{case_id}", tags=["cases"], summary="Correct a case's description or address",
              responses=NOT_IN_AREA)
def update_case(case_id: CaseId, body: CaseUpdate, principal: WriteKey, ctx: CtxDep) -> CasePublic:
    try:
        view = case_commands.correct_case(ctx, principal=principal, case_id=case_id,
                                          description=body.description, address=body.address)
    except CaseNotFound:
        raise not_found("no such case") from None
    return case_public(view, principal)


@router.post("/cases/{case_id}/actions", tags=["cases"], summary="A lifecycle action as the key's role",
             responses={**IDEMPOTENT_RESPONSES, **NOT_IN_AREA})
async def act_on_case(case_id: CaseId, body: CaseActionRequest, request: Request, principal: WriteKey,
                      ctx: CtxDep, idempotency_key: IdempotencyKey = None) -> Response:
    # Outside the key's area: 404 before the idempotency layer, so not even a key record is written.
    await asyncio.to_thread(case_queries.ensure_case_visible, ctx, principal=principal, case_id=case_id)

    async def produce() -> Response:
        try:
            view = await asyncio.to_thread(
                case_commands.act_on_case, ctx, principal=principal, case_id=case_id,
                action=Action(body.action.value), note=body.note, expected_version=body.expected_version,
                merge_into_id=body.merge_into_id)
        except CaseNotFound:
            raise not_found("no such case") from None
        except StaleCase:
            raise ApiError(409, "stale", "the case changed since expected_version; reload it") from None
        except LifecycleError as exc:
            raise lifecycle_refusal(exc) from None
        except NobodyAvailable:
            raise ApiError(409, "nobody_available", "no worker on duty can be offered this case now; "
                                                    "nothing was changed") from None
        except MergeTargetInvalid as exc:
            raise ApiError(422, "merge_target_invalid", _MERGE_REFUSALS[exc.why]) from None
        return json_answer(case_public(view, principal))

    return await run_idempotent(request, ctx, principal, idempotency_key, produce)


@router.post("/cases/{case_id}/clear", tags=["intake"], summary="The source says the problem is gone (自动结案)",
             responses={**IDEMPOTENT_RESPONSES, **NOT_IN_AREA})
async def clear_case(case_id: CaseId, request: Request, principal: IntakeKey, ctx: CtxDep,
                     body: Annotated[CaseClear | None, Body()] = None,
                     idempotency_key: IdempotencyKey = None) -> Response:
    await asyncio.to_thread(case_queries.ensure_case_visible, ctx, principal=principal, case_id=case_id)

    async def produce() -> Response:
        try:
            result = await asyncio.to_thread(case_commands.clear_case, ctx, principal=principal, case_id=case_id,
                                             note=body.note if body else None)
        except CaseNotFound:
            raise not_found("no such case") from None
        except intake.NotMachineCase:
            raise ApiError(409, "not_machine_case", "only cases opened by machine intake can be cleared") from None
        except StaleCase:
            raise ApiError(409, "stale", "the case kept changing; try again") from None
        return json_answer(ClearAnswer(outcome=result.outcome, case=case_public(result.view, principal)))

    return await run_idempotent(request, ctx, principal, idempotency_key, produce)


@router.get("/cases/{case_id}/photos", tags=["cases"], summary="Photos of a case", responses=NOT_IN_AREA)
def list_photos(case_id: CaseId, principal: ReadKey, ctx: CtxDep) -> list[PhotoPublic]:
    return [photo_public(p) for p in case_queries.list_photos(ctx, principal=principal, case_id=case_id)]


@router.get("/cases/{case_id}/photos/{photo_id}", tags=["cases"], summary="A photo (EXIF-free JPEG)",
            response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}, "description": "The photo"},
                       404: {"description": "No such photo of a case in the key's area"}})
def get_photo(case_id: CaseId, photo_id: PhotoId, principal: ReadKey, ctx: CtxDep) -> FileResponse:
    path = case_queries.photo_file(ctx, principal=principal, case_id=case_id, photo_id=photo_id)
    return FileResponse(path, media_type="image/jpeg")
