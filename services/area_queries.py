"""Read services of the map (areas) and of area KPIs for API callers, scoped to the caller's area.

What callers may rely on: an area outside the key's subtree raises `NotVisible("area")`, exactly
as an area that does not exist; rows come back as stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlmodel import Session, select

from models.tables import Area
from services import kpi
from services.api_keys import Principal, area_in_scope, area_subtree
from services.api_views import NotVisible
from services.context import ServiceContext


class NoSingleTopArea(LookupError):
    """The caller named no area and the store has no single top-level area to default to."""


def list_areas(ctx: ServiceContext, *, principal: Principal, level: str | None, parent_code: str | None,
               limit: int) -> list[Area]:
    """Areas in the key's subtree, by code, filtered by level and parent."""
    stmt = select(Area)
    if principal.area_code is not None:
        stmt = stmt.where(Area.code.in_(area_subtree(principal.area_code)))
    if level:
        stmt = stmt.where(Area.level == level)
    if parent_code:
        stmt = stmt.where(Area.parent_code == parent_code)
    with ctx.sessions() as session:
        return list(session.exec(stmt.order_by(Area.code).limit(limit)))


def read_area(ctx: ServiceContext, *, principal: Principal, code: str) -> Area:
    """The area; `NotVisible("area")` when unknown or outside the key's subtree."""
    with ctx.sessions() as session:
        area = session.exec(select(Area).where(Area.code == code)).first()
        if area is None or not area_in_scope(session, principal, area.code):
            raise NotVisible("area")
        return area


def _check_area(session: Session, principal: Principal, code: str) -> None:
    if session.exec(select(Area.id).where(Area.code == code)).first() is None \
            or not area_in_scope(session, principal, code):
        raise NotVisible("area")


def ensure_area_visible(ctx: ServiceContext, *, principal: Principal, area_code: str) -> None:
    """Raises `NotVisible("area")` unless the area exists inside the key's subtree."""
    with ctx.sessions() as session:
        _check_area(session, principal, area_code)


def area_kpis(ctx: ServiceContext, *, principal: Principal, area_code: str | None,
              period: Literal["today", "7d", "30d"] | None, start: datetime | None, end: datetime | None,
              worst: int) -> kpi.Kpis:
    """The KPIs of an area's subtree over [start, end) or over `period` (default 7d) up to now.

    The area defaults to the key's area, then to the store's single top-level area (else
    `NoSingleTopArea`); `NotVisible("area")` when it is unknown or outside the key's subtree.
    `start` without `end` runs to now. The caller validates that the period is well formed.
    """
    now = ctx.clock.now()
    if start is not None:
        end = end or now
    else:
        start, end = kpi.period_bounds(period or "7d", now, ctx.timezone)
    with ctx.sessions() as session:
        code = area_code or principal.area_code
        if code is None:
            roots = session.exec(select(Area.code).where(Area.parent_code.is_(None)).limit(2)).all()
            if len(roots) != 1:
                raise NoSingleTopArea()
            code = roots[0]
        _check_area(session, principal, code)
        return kpi.compute(session, area_code=code, start=start, end=end, now=now, worst=worst)
