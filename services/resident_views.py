"""What a resident may see of cases: their list (/my), a case card with its timeline, and labels.

Everything here is read-only. A resident sees only cases they reported or follow; asking for
any other case answers `NotFollowed`, whatever id is put in a replayed button. Staff identities
never appear: the timeline shows what happened and when, not who did it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import select

from models.lifecycle import Action, Status
from models.resident import CaseFollower
from models.tables import Area, Case, CaseEvent, Category, Photo
from services.areas import area_chain
from services.case_ending import withdrawal_blocker
from services.context import ServiceContext
from services.progress import NoteLine, recent_notes

# Notes residents may read: their own words when reopening, and why a report was refused.
_PUBLIC_NOTES = frozenset({Action.REOPEN, Action.CANCEL})

class NotFollowed(Exception):
    """The case does not exist or the resident neither reported nor follows it."""


def category_name(category: Category | None, code: str, locale: str) -> str:
    if category is None:
        return code
    return category.name if locale == "zh_CN" else (category.name_en or category.name)


def area_name(area: Area, locale: str) -> str:
    return area.name if locale == "zh_CN" else (area.name_en or area.name)


def place_name(session, grid_code: str | None, locale: str) -> str:  # noqa: ANN001 - a Session
    """"Grid, street, district" for a grid code (city left out), or "" when unknown."""
    if not grid_code:
        return ""
    chain = [a for a in area_chain(session, grid_code) if a.level != "city"]
    return ", ".join(area_name(a, locale) for a in chain)


def local_time(at: datetime | None, timezone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`at` in the city's timezone, e.g. 2026-11-21 10:00."""
    return at.astimezone(ZoneInfo(timezone)).strftime(fmt) if at else ""


@dataclass(frozen=True)
class CaseLine:
    case_id: int
    number: str
    category: str
    status: Status
    created_at: datetime


@dataclass(frozen=True)
class CasePage:
    items: list[CaseLine]
    page: int  # 0-based, clamped into range
    pages: int
    total: int


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    action: Action
    note: str | None


@dataclass(frozen=True)
class CaseCard:
    case_id: int
    number: str
    category: str
    status: Status
    lat: float
    lon: float
    place: str
    description: str
    photos: int
    report_count: int
    created_at: datetime
    handle_due_at: datetime | None
    closed_at: datetime | None
    timeline: list[TimelineEntry]
    progress: list[NoteLine] = field(default_factory=list)  # workers' latest notes, masked, nobody named
    withdrawable: bool = False  # the reader reported it and nobody has started on it (services/case_ending.py)


def my_cases(ctx: ServiceContext, *, person_id: int, locale: str, page: int = 0, per_page: int = 5) -> CasePage:
    """The resident's cases (reported or followed), newest first, one page of them."""
    with ctx.sessions() as session:
        followed = select(CaseFollower.case_id).where(CaseFollower.person_id == person_id)
        total = session.exec(select(sa.func.count()).select_from(Case).where(Case.id.in_(followed))).one()
        pages = max(1, math.ceil(total / per_page))
        page = min(max(page, 0), pages - 1)
        rows = session.exec(
            select(Case, Category)
            .join(Category, Category.code == Case.category_code, isouter=True)
            .where(Case.id.in_(followed))
            .order_by(Case.created_at.desc(), Case.id.desc())
            .offset(page * per_page)
            .limit(per_page)
        ).all()
        items = [CaseLine(c.id, c.number, category_name(cat, c.category_code, locale), Status(c.status),
                          c.created_at) for c, cat in rows]
    return CasePage(items=items, page=page, pages=pages, total=total)


def case_card(ctx: ServiceContext, *, person_id: int, case_id: int, locale: str) -> CaseCard:
    """The card of one of the resident's cases; `NotFollowed` for anyone else's."""
    with ctx.sessions() as session:
        follows = session.exec(select(CaseFollower.id).where(
            CaseFollower.case_id == case_id, CaseFollower.person_id == person_id)).first()
        case = session.get(Case, case_id)
        if follows is None or case is None:
            raise NotFollowed(str(case_id))
        category = session.exec(select(Category).where(Category.code == case.category_code)).first()
        photos = session.exec(select(sa.func.count()).select_from(Photo).where(
            Photo.case_id == case_id, Photo.purpose == "report")).one()
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id)
                              .order_by(CaseEvent.at, CaseEvent.id)).all()
        timeline = [TimelineEntry(e.at, Action(e.action), e.note if Action(e.action) in _PUBLIC_NOTES else None)
                    for e in events if Action(e.action) not in (Action.REPORT, Action.PROGRESS)]
        return CaseCard(
            case_id=case.id, number=case.number, category=category_name(category, case.category_code, locale),
            status=Status(case.status), lat=case.lat, lon=case.lon,
            place=place_name(session, case.grid_code, locale), description=case.description,
            photos=photos, report_count=case.report_count, created_at=case.created_at,
            handle_due_at=case.handle_due_at, closed_at=case.closed_at, timeline=timeline,
            progress=recent_notes(session, case.id),
            withdrawable=withdrawal_blocker(session, case, person_id) is None,
        )
