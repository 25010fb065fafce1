"""Names stored in two languages (areas, categories, departments), picked for a reader's locale.

Data, not wording: the store holds both names; the channel renders the sentence around them.
"""

from __future__ import annotations

from sqlmodel import Session

from models.tables import Area, Category, Department
from services import reference


def localized(row: Area | Category | Department | None, locale: str, fallback: str = "") -> str:
    """The Chinese name for zh_CN readers, the English one (when there is one) for everybody else."""
    if row is None:
        return fallback
    if locale.startswith("zh") or not row.name_en:
        return row.name
    return row.name_en


def department_name(session: Session, code: str, locale: str) -> str:
    return localized(reference.department(session, code), locale, code)
