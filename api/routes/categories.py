"""/api/v1/categories: the category catalogue, its intake rules and questions."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import V1_PREFIX, AdminKey, ApiError, CtxDep, ReadKey, not_found
from api.schemas import CategoryPatch, CategoryPublic, IntakeRulePublic, IntakeRuleWrite, QuestionWrite
from api.views import category_public, question_public
from models.api import ClearRule
from services import category_queries, intake
from services.catalogue import CatalogueError
from services.cases import UnknownCategory

router = APIRouter(prefix=V1_PREFIX)
NO_CATEGORY: dict[int | str, dict[str, str]] = {404: {"description": "No such category"}}


@router.get("/categories", tags=["categories"], summary="The category catalogue")
def list_categories(principal: ReadKey, ctx: CtxDep) -> list[CategoryPublic]:
    return [category_public(c) for c in category_queries.list_categories(ctx)]


@router.get("/categories/{code}", tags=["categories"], summary="One category with its intake rule and questions",
            responses=NO_CATEGORY)
def read_category(code: str, principal: ReadKey, ctx: CtxDep) -> CategoryPublic:
    return category_public(category_queries.read_category(ctx, code=code))


@router.patch("/categories/{code}", tags=["categories"], summary="Edit a category", responses=NO_CATEGORY)
def patch_category(code: str, body: CategoryPatch, principal: AdminKey, ctx: CtxDep) -> CategoryPublic:
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise ApiError(422, "nothing_to_change", "give at least one field to change")
    try:
        view = category_queries.update_category(ctx, code=code, fields=fields)
    except CatalogueError as exc:
        raise ApiError(422, "invalid_category", str(exc)) from None
    return category_public(view)


@router.put("/categories/{code}/intake-rule", tags=["categories"],
            summary="What a machine's clear does, and how long repeats fold", responses=NO_CATEGORY)
def put_intake_rule(code: str, body: IntakeRuleWrite, principal: AdminKey, ctx: CtxDep) -> IntakeRulePublic:
    try:
        row = intake.set_intake_rule(ctx, category_code=code, on_clear=ClearRule(body.on_clear),
                                     fold_window_s=body.fold_window_s)
    except UnknownCategory:
        raise not_found("no such category") from None
    return IntakeRulePublic(on_clear=row.on_clear, fold_window_s=row.fold_window_s)


@router.put("/categories/{code}/questions", tags=["categories"],
            summary="The questions of a category (Open311 service-definition attributes)", responses=NO_CATEGORY)
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
    return [question_public(r) for r in rows]
