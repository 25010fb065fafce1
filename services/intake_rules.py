"""Intake rules: per category, what a source's "cleared" does and how long repeats fold.

A category without its own rule follows the settings' defaults (`intake_default_clear_rule`,
`intake_fold_window_s`).
"""

from __future__ import annotations

from sqlmodel import Session, select

from models.api import ClearRule, IntakeRule
from models.tables import Category
from services.cases import CaseError, UnknownCategory
from services.context import ServiceContext
from services import reference
from services.db import transaction


def rule_of(session: Session, ctx: ServiceContext, category_code: str) -> tuple[ClearRule, int]:
    """The clear rule and fold window (seconds) in force for a category, read in the caller's session."""
    row = reference.intake_rule(session, category_code)
    if row is not None:
        return ClearRule(row.on_clear), row.fold_window_s
    return ClearRule(ctx.settings.intake_default_clear_rule), ctx.settings.intake_fold_window_s



def set_intake_rule(ctx: ServiceContext, *, category_code: str, on_clear: ClearRule,
                    fold_window_s: int) -> IntakeRule:
    """Create or replace the intake rule of a category. Raises UnknownCategory."""
    if fold_window_s < 0 or fold_window_s > 7 * 24 * 3600:
        raise CaseError("fold_window_s must be between 0 and 604800")
    with transaction(ctx.sessions) as session:
        if session.exec(select(Category.id).where(Category.code == category_code)).first() is None:
            raise UnknownCategory(category_code)
        row = session.get(IntakeRule, category_code) or IntakeRule(category_code=category_code)
        row.on_clear, row.fold_window_s, row.updated_at = on_clear.value, fold_window_s, ctx.clock.now()
        session.add(row)
        reference.bump(session, ctx.clock.now())
    return row


def intake_rule(ctx: ServiceContext, *, category_code: str) -> tuple[ClearRule, int]:
    """The rule in force for a category (its own, or the settings' default)."""
    with ctx.sessions() as session:
        return rule_of(session, ctx, category_code)

