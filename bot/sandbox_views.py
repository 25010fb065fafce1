"""What the sandbox console reads from the store: the demo map, recent cases, a case's timeline.

Read-only: each call is one short session; nothing here changes the store.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from bot.sandbox_demo import DEMO_STREET
from models.tables import Area, AreaLevel, Case, CaseEvent, Category, Person
from services.context import ServiceContext


def map_features(ctx: ServiceContext, area_code: str | None = None) -> dict[str, Any]:
    """GeoJSON of the area around the demo street: its district, the district's streets and grids.

    `area_code` picks another street or district; unknown codes give an empty collection.
    """
    with ctx.sessions() as session:
        focus = session.exec(select(Area).where(Area.code == (area_code or DEMO_STREET))).first()
        if focus is None:
            return {"type": "FeatureCollection", "features": [], "focus": None}
        district = focus if focus.level == AreaLevel.DISTRICT else session.exec(
            select(Area).where(Area.code == focus.parent_code)).first() or focus
        streets = list(session.exec(select(Area).where(Area.parent_code == district.code)))
        grids = list(session.exec(select(Area).where(
            Area.parent_code.in_([s.code for s in streets])))) if streets else []
    features = []
    for area in [district, *streets, *grids]:
        if not area.geometry:
            continue
        features.append({
            "type": "Feature",
            "geometry": json.loads(area.geometry),
            "properties": {"code": area.code, "name": area.name, "name_en": area.name_en,
                           "level": str(area.level), "parent_code": area.parent_code},
        })
    return {"type": "FeatureCollection", "features": features, "focus": focus.code}

def recent_cases(ctx: ServiceContext, limit: int = 20) -> list[dict[str, Any]]:
    """The newest cases, newest first, with their category's names."""
    with ctx.sessions() as session:
        rows = session.exec(
            select(Case, Category)
            .join(Category, Category.code == Case.category_code, isouter=True)
            .order_by(Case.id.desc())
            .limit(limit)
        ).all()
        return [case_summary(case, category) for case, category in rows]

def latest_event_id(ctx: ServiceContext) -> int:
    """The id of the newest case event (0 for none): the console refreshes when it moves."""
    with ctx.sessions() as session:
        return session.exec(select(sa.func.max(CaseEvent.id))).one() or 0

def case_timeline(ctx: ServiceContext, number: str) -> dict[str, Any] | None:
    """A case and its audit events (case_event rows), oldest first, with who acted; None if unknown."""
    with ctx.sessions() as session:
        case = session.exec(select(Case).where(Case.number == number)).first()
        if case is None:
            return None
        rows = session.exec(
            select(CaseEvent, Person)
            .join(Person, CaseEvent.actor_id == Person.id, isouter=True)
            .where(CaseEvent.case_id == case.id)
            .order_by(CaseEvent.id)
        ).all()
        events = [{
            "id": event.id,
            "at": event.at.isoformat() if event.at else None,
            "action": str(event.action),
            "from_status": str(event.from_status) if event.from_status else None,
            "to_status": str(event.to_status),
            "actor_role": str(event.actor_role),
            "actor": person.display_name if person is not None else None,
            "note": event.note,
        } for event, person in rows]
        category = session.exec(select(Category).where(Category.code == case.category_code)).first()
        return {"case": case_summary(case, category), "events": events}


def case_summary(case: Case, category: Category | None = None) -> dict[str, Any]:
    """A case as the console lists it."""
    return {
        "number": case.number,
        "status": str(case.status),
        "category": case.category_code,
        "category_name": category.name if category else None,
        "category_name_en": category.name_en if category else None,
        "grid": case.grid_code,
        "lat": case.lat,
        "lon": case.lon,
        "created_at": case.created_at.isoformat() if case.created_at else None,
        "updated_at": case.updated_at.isoformat() if case.updated_at else None,
    }
