"""What a resident picks while reporting: categories, the grid of a point, a possible duplicate case.

Everything here is read-only; see services/reporting.py for submission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from geopy.distance import geodesic
from sqlmodel import select

from models.lifecycle import OPEN, Status
from models.resident import CaseFollower, ReportReceipt
from models.tables import Case, Category
from services import cases
from services.context import ServiceContext
from services.photos import CleanPhoto, clean_photo
from services.report_draft import CategoryUnavailable
from services.resident_views import place_name

_METRES_PER_DEGREE = 111_320.0


# -- categories -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CategoryChoice:
    code: str
    kind: str
    name: str
    name_en: str
    photo_required: bool
    handle_sla_minutes: int
    duplicate_radius_m: int

    def label(self, locale: str) -> str:
        return self.name if locale == "zh_CN" else (self.name_en or self.name)


def _choice(c: Category) -> CategoryChoice:
    return CategoryChoice(c.code, c.kind, c.name, c.name_en, c.photo_required, c.handle_sla_minutes,
                          c.duplicate_radius_m)


def active_categories(ctx: ServiceContext) -> list[CategoryChoice]:
    """Active categories in catalogue order (kinds appear in the order of their first category)."""
    with ctx.sessions() as session:
        rows = session.exec(select(Category).where(Category.active).order_by(Category.id)).all()
    return [_choice(c) for c in rows]


def recent_categories(ctx: ServiceContext, *, person_id: int, limit: int = 3) -> list[CategoryChoice]:
    """The person's most recently reported active categories, newest first (a shortcut in the menu)."""
    with ctx.sessions() as session:
        rows = session.exec(
            select(Case.category_code, sa.func.max(Case.created_at).label("last"))
            .join(ReportReceipt, ReportReceipt.case_id == Case.id)
            .where(ReportReceipt.person_id == person_id)
            .group_by(Case.category_code)
            .order_by(sa.desc("last"))
            .limit(limit * 2)
        ).all()
        codes = [code for code, _ in rows]
        found = {c.code: c for c in session.exec(select(Category).where(Category.code.in_(codes), Category.active))}
    return [_choice(found[code]) for code in codes if code in found][:limit]


def get_category(ctx: ServiceContext, code: str) -> CategoryChoice:
    with ctx.sessions() as session:
        row = session.exec(select(Category).where(Category.code == code)).first()
    if row is None or not row.active:
        raise CategoryUnavailable(code)
    return _choice(row)


# -- photos and place -----------------------------------------------------------------------------

def inspect_photo(data: bytes) -> CleanPhoto:
    """Validate one picture now, so the resident hears at once what is wrong (PhotoRejected)."""
    return clean_photo(data)


@dataclass(frozen=True)
class Place:
    grid_code: str
    name: str  # grid, street, district in the resident's language


def locate(ctx: ServiceContext, *, lat: float, lon: float, locale: str) -> Place:
    """The grid covering the point; `cases.OutsideGrid` when no grid does."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or ctx.grid_map is None:
        raise cases.OutsideGrid(f"{lat},{lon}")
    code = ctx.grid_map.lookup(lon, lat)
    if code is None:
        raise cases.OutsideGrid(f"{lat:.6f},{lon:.6f}")
    with ctx.sessions() as session:
        return Place(code, place_name(session, code, locale) or code)


def place_label(ctx: ServiceContext, *, grid_code: str | None, locale: str) -> str:
    with ctx.sessions() as session:
        return place_name(session, grid_code, locale)


# -- duplicates -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Duplicate:
    case_id: int
    number: str
    status: Status
    distance_m: float
    created_at: datetime
    report_count: int  # no description: another resident's words are not shown to this one
    already_following: bool


def find_duplicate(ctx: ServiceContext, *, category_code: str, lat: float, lon: float,
                   person_id: int | None) -> Duplicate | None:
    """The nearest open case of the category within its duplicate radius, or None."""
    with ctx.sessions() as session:
        category = session.exec(select(Category).where(Category.code == category_code)).first()
        radius = category.duplicate_radius_m if category else 50
        # A bounding box in SQL narrows the candidates; the geodesic distance decides.
        dlat = radius / _METRES_PER_DEGREE
        dlon = radius / (_METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
        candidates = session.exec(
            select(Case).where(
                Case.category_code == category_code,
                Case.status.in_([s.value for s in OPEN]),
                Case.lat.between(lat - dlat, lat + dlat),
                Case.lon.between(lon - dlon, lon + dlon),
            )
        ).all()
        best: tuple[float, Case] | None = None
        for case in candidates:
            distance = geodesic((lat, lon), (case.lat, case.lon)).meters
            if distance <= radius and (best is None or distance < best[0]):
                best = (distance, case)
        if best is None:
            return None
        distance, case = best
        following = person_id is not None and session.exec(select(CaseFollower.id).where(
            CaseFollower.case_id == case.id, CaseFollower.person_id == person_id)).first() is not None
        return Duplicate(case.id, case.number, Status(case.status), distance, case.created_at,
                         case.report_count, following)
