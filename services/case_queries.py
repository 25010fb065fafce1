"""Read services of cases for API callers: filtered, area-scoped lists with cursors, cards, photos, exports.

Reads only. Every query applies the caller's area scope (`services.api_keys.case_scope_clause`), so
nothing outside the key's area is listed, counted, exported or shown: such a case raises
`NotVisible("case")`, exactly as a case that does not exist. Results are plain rows (`CaseView`
carries the case with its reporter and assignee); masking personal data is the caller's rendering.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Status
from models.tables import Case, CaseEvent, CaseSource, Person, Photo
from services.api_keys import Principal, area_in_scope, area_subtree, case_in_scope, case_scope_clause
from services.api_views import BadFilter, NotVisible, Page, decode_cursor, encode_cursor
from services.context import ServiceContext

MAX_PAGE = 200


@dataclass(frozen=True)
class CaseFilter:
    statuses: tuple[str, ...] = ()
    category_code: str | None = None
    area_code: str | None = None
    source: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_after: datetime | None = None


@dataclass(frozen=True)
class CaseView:
    """A case with the people it names (None when absent)."""

    case: Case
    reporter: Person | None = None
    assignee: Person | None = None


@dataclass(frozen=True)
class CaseCard:
    """A case with its audit events, oldest first."""

    view: CaseView
    timeline: list[CaseEvent] = field(default_factory=list)


def filtered_cases(session: Session, principal: Principal, flt: CaseFilter) -> sa.Select:
    """SELECT of the cases the key may see that match `flt`.

    Raises `NotVisible("area")` when the area filter lies outside the key's area (checked first), and
    `BadFilter` for an unknown status or source.
    """
    if flt.area_code:
        if not area_in_scope(session, principal, flt.area_code):
            raise NotVisible("area")
        # Inside the key's subtree, so this is the narrower scope (and one subtree CTE per statement).
        stmt = select(Case).where(Case.grid_code.in_(area_subtree(flt.area_code)))
    else:
        stmt = select(Case).where(case_scope_clause(principal))
    for status in flt.statuses:
        if status not in {s.value for s in Status}:
            raise BadFilter("status", status)
    if flt.statuses:
        stmt = stmt.where(Case.status.in_(flt.statuses))
    if flt.category_code:
        stmt = stmt.where(Case.category_code == flt.category_code)
    if flt.source:
        if flt.source not in {s.value for s in CaseSource}:
            raise BadFilter("source", flt.source)
        stmt = stmt.where(Case.source == flt.source)
    if flt.created_from:
        stmt = stmt.where(Case.created_at >= flt.created_from)
    if flt.created_to:
        stmt = stmt.where(Case.created_at < flt.created_to)
    if flt.updated_after:
        stmt = stmt.where(Case.updated_at > flt.updated_after)
    return stmt


def views_of(session: Session, rows: list[Case]) -> list[CaseView]:
    """The cases with their reporters and assignees, loaded in one query."""
    wanted = {i for c in rows for i in (c.reporter_id, c.assignee_id) if i is not None}
    people = {p.id: p for p in session.exec(select(Person).where(Person.id.in_(wanted)))} if wanted else {}
    return [CaseView(c, people.get(c.reporter_id), people.get(c.assignee_id)) for c in rows]


def visible_case(session: Session, principal: Principal, case_id: int) -> Case:
    """The case, or `NotVisible("case")` when it does not exist or lies outside the key's area."""
    case = session.get(Case, case_id)
    if case is None or not case_in_scope(session, principal, case):
        raise NotVisible("case")
    return case


def list_cases(ctx: ServiceContext, *, principal: Principal, flt: CaseFilter, limit: int,
               cursor: str | None) -> Page[CaseView]:
    """Newest first; the cursor names the last id returned. Raises as `filtered_cases`, and `BadCursor`."""
    with ctx.sessions() as session:
        stmt = filtered_cases(session, principal, flt).order_by(Case.id.desc())
        if cursor:
            stmt = stmt.where(Case.id < decode_cursor(cursor))
        rows = list(session.exec(stmt.limit(limit + 1)))
        more, rows = len(rows) > limit, rows[:limit]
        return Page(views_of(session, rows), encode_cursor(rows[-1].id) if more and rows else None)


def ensure_case_visible(ctx: ServiceContext, *, principal: Principal, case_id: int) -> None:
    """Raises `NotVisible("case")` unless the key may see the case; reads nothing else."""
    with ctx.sessions() as session:
        visible_case(session, principal, case_id)


def case_view(ctx: ServiceContext, *, case: Case) -> CaseView:
    """A case (e.g. one a write service returned) with its people, read afresh."""
    with ctx.sessions() as session:
        return views_of(session, [case])[0]


def read_case(ctx: ServiceContext, *, principal: Principal, case_id: int) -> CaseCard:
    """The case with its timeline; `NotVisible("case")` outside the key's area."""
    with ctx.sessions() as session:
        case = visible_case(session, principal, case_id)
        events = list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)))
        return CaseCard(views_of(session, [case])[0], events)


def list_photos(ctx: ServiceContext, *, principal: Principal, case_id: int) -> list[Photo]:
    """The case's photos, oldest first; `NotVisible("case")` outside the key's area."""
    with ctx.sessions() as session:
        case = visible_case(session, principal, case_id)
        return list(session.exec(select(Photo).where(Photo.case_id == case.id).order_by(Photo.id)))


def photo_file(ctx: ServiceContext, *, principal: Principal, case_id: int, photo_id: int) -> Path:
    """The stored file of a case's photo, always inside the data directory.

    `NotVisible("case")` outside the key's area; `NotVisible("photo")` when the photo is not the case's
    or its file is missing (or would lie outside the data directory).
    """
    with ctx.sessions() as session:
        case = visible_case(session, principal, case_id)
        photo = session.get(Photo, photo_id)
        if photo is None or photo.case_id != case.id:
            raise NotVisible("photo")
        root = Path(ctx.settings.data_dir).resolve()
        path = (root / photo.path).resolve()
    if root not in path.parents or not path.is_file():
        raise NotVisible("photo")
    return path


def check_case_filter(ctx: ServiceContext, *, principal: Principal, flt: CaseFilter) -> None:
    """Raises what `filtered_cases` would, before an export starts streaming."""
    # A session of its own, closed before the export streams: on SQLite every transaction holds the
    # write lock (BEGIN IMMEDIATE), so a session left open would block the streaming reader.
    with ctx.sessions() as session:
        filtered_cases(session, principal, flt)


def iter_cases(ctx: ServiceContext, *, principal: Principal, flt: CaseFilter, limit: int,
               batch: int = 500) -> Iterator[CaseView]:
    """Cases for an export, newest first, read in batches so memory stays flat (one session throughout)."""
    with ctx.sessions() as session:
        last: int | None = None
        left = limit
        while left > 0:
            stmt = filtered_cases(session, principal, flt).order_by(Case.id.desc())
            if last is not None:
                stmt = stmt.where(Case.id < last)
            rows = list(session.exec(stmt.limit(min(batch, left))))
            if not rows:
                return
            yield from views_of(session, rows)
            last = rows[-1].id
            left -= len(rows)
