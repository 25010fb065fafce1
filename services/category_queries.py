"""The category catalogue as API callers read and edit it: each category with its intake rule and questions.

What callers may rely on: `CategoryView.on_clear` / `fold_window_s` are the category's own intake
rule, or the settings' defaults when it has none; questions come in their stored order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from models.api import IntakeRule, ServiceQuestion
from models.tables import Category
from services import catalogue, intake
from services.api_views import NotVisible
from services.context import ServiceContext


@dataclass(frozen=True)
class CategoryView:
    category: Category
    on_clear: str
    fold_window_s: int
    questions: list[ServiceQuestion]


def _view(session: Session, ctx: ServiceContext, row: Category) -> CategoryView:
    rule = session.get(IntakeRule, row.code)
    on_clear = rule.on_clear if rule else ctx.settings.intake_default_clear_rule
    window = rule.fold_window_s if rule else ctx.settings.intake_fold_window_s
    return CategoryView(row, on_clear, window, intake.service_questions(session, row.code))


def list_categories(ctx: ServiceContext) -> list[CategoryView]:
    """Every category (active or not), by kind and code."""
    with ctx.sessions() as session:
        rows = session.exec(select(Category).order_by(Category.kind, Category.code)).all()
        return [_view(session, ctx, c) for c in rows]


def read_category(ctx: ServiceContext, *, code: str) -> CategoryView:
    """One category; `NotVisible("category")` when unknown."""
    with ctx.sessions() as session:
        row = session.exec(select(Category).where(Category.code == code)).first()
        if row is None:
            raise NotVisible("category")
        return _view(session, ctx, row)


def update_category(ctx: ServiceContext, *, code: str, fields: dict[str, Any]) -> CategoryView:
    """Change the given fields (see `catalogue.set_category_fields`) and read the category back.

    Raises `NotVisible("category")` for an unknown code and `catalogue.CatalogueError` for an invalid
    edit; nothing is written then.
    """
    with ctx.sessions() as session:
        if session.exec(select(Category.id).where(Category.code == code)).first() is None:
            raise NotVisible("category")
    catalogue.set_category_fields(ctx.sessions, code, **fields)
    return read_category(ctx, code=code)
