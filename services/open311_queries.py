"""Open311 GeoReport v2 reads: the service list, service definitions and service requests in the key's area.

What callers may rely on: requests outside the key's area are never returned (an unknown id and a
foreign one both raise `NotVisible("service request")`); without a key (`principal=None`, public
reads) every area is searched and the caller renders the public view; each `RequestRecord` carries the case with
what an Open311 answer names (category, department, latest note, sync link, submission). Parsing the
query string and formatting JSON or XML are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.api import CaseSubmission, ServiceQuestion, SyncLink
from models.lifecycle import Status
from models.tables import Case, CaseEvent, Category, Department
from services import intake
from services.api_keys import Principal, case_in_scope, case_scope_clause
from services.api_views import NotVisible
from services.context import ServiceContext

CLOSED_STATUSES = frozenset({Status.CLOSED, Status.CANCELLED, Status.MERGED})


@dataclass(frozen=True)
class ServiceEntry:
    category: Category
    has_questions: bool


@dataclass(frozen=True)
class RequestRecord:
    case: Case
    category: Category | None
    department: Department | None
    note: str | None  # the latest note of the case's events: it explains the current status
    link: SyncLink | None
    submission: CaseSubmission | None


@dataclass(frozen=True)
class RequestQuery:
    """A parsed, validated request search. `numbers` overrides everything else (as the standard says);
    `closed` None means open and closed alike."""

    numbers: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    closed: bool | None = None
    start: datetime | None = None
    end: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None


def list_services(ctx: ServiceContext) -> list[ServiceEntry]:
    """Active categories by kind and code, each saying whether it has questions."""
    with ctx.sessions() as session:
        rows = session.exec(select(Category).where(Category.active == True).order_by(  # noqa: E712
            Category.kind, Category.code)).all()
        with_questions = set(session.exec(select(ServiceQuestion.category_code).distinct()))
        return [ServiceEntry(c, c.code in with_questions) for c in rows]


def service_definition(ctx: ServiceContext, *, service_code: str) -> tuple[Category, list[ServiceQuestion]]:
    """An active category and its questions; `NotVisible("service")` when unknown or inactive."""
    with ctx.sessions() as session:
        category = session.exec(select(Category).where(Category.code == service_code,
                                                        Category.active == True)).first()  # noqa: E712
        if category is None:
            raise NotVisible("service")
        return category, intake.service_questions(session, category.code)


def records_of(session: Session, rows: list[Case]) -> list[RequestRecord]:
    """The cases with what their Open311 answers name, in a handful of queries."""
    if not rows:
        return []
    ids = [c.id for c in rows]
    categories = {c.code: c for c in session.exec(select(Category).where(
        Category.code.in_({c.category_code for c in rows})))}
    departments = {d.code: d for d in session.exec(select(Department).where(
        Department.code.in_({c.department_code for c in categories.values()})))}
    notes: dict[int, str] = {}
    for case_id, note in session.exec(select(CaseEvent.case_id, CaseEvent.note).where(
            CaseEvent.case_id.in_(ids), CaseEvent.note.is_not(None)).order_by(CaseEvent.id)):
        notes[case_id] = note
    links = {link.case_id: link for link in session.exec(select(SyncLink).where(SyncLink.case_id.in_(ids)))}
    subs = {s.case_id: s for s in session.exec(select(CaseSubmission).where(CaseSubmission.case_id.in_(ids)))}
    out = []
    for case in rows:
        category = categories.get(case.category_code)
        department = departments.get(category.department_code) if category else None
        out.append(RequestRecord(case, category, department, notes.get(case.id), links.get(case.id),
                                 subs.get(case.id)))
    return out


def read_request(ctx: ServiceContext, *, principal: Principal | None, number: str) -> RequestRecord:
    """The request numbered `number`; `NotVisible("service request")` when unknown or outside the key's area
    (`principal` None: a public read, every area)."""
    with ctx.sessions() as session:
        case = session.exec(select(Case).where(Case.number == number)).first()
        if case is None or (principal is not None and not case_in_scope(session, principal, case)):
            raise NotVisible("service request")
        return records_of(session, [case])[0]


def find_requests(ctx: ServiceContext, *, principal: Principal | None,
                  query: RequestQuery) -> list[RequestRecord]:
    """Requests in the key's area (`principal` None: a public read, every area), at most `open311_max_results`.

    By numbers: those found (`NotVisible` when none is). By updated time (an extension for polling):
    oldest change first. Otherwise by creation, newest first, within the default window (a missing
    bound is the other one ± the window; neither: the window up to now).
    """
    limit = ctx.settings.open311_max_results
    stmt = select(Case).where(case_scope_clause(principal) if principal is not None else sa.true())
    with ctx.sessions() as session:
        if query.numbers:
            rows = session.exec(stmt.where(Case.number.in_(query.numbers[:limit]))).all()
            if not rows:  # none of them exists in the key's area: the same answer as for an unknown id
                raise NotVisible("service request")
            return records_of(session, list(rows))
        if query.service_codes:
            stmt = stmt.where(Case.category_code.in_(query.service_codes))
        if query.closed is not None:
            closed = [s.value for s in CLOSED_STATUSES]
            stmt = stmt.where(Case.status.in_(closed) if query.closed else Case.status.not_in(closed))
        start, end = query.start, query.end
        after, before = query.updated_after, query.updated_before
        window = timedelta(days=ctx.settings.open311_default_window_days)
        if after or before:
            if after:
                stmt = stmt.where(Case.updated_at >= after)
            if before:
                stmt = stmt.where(Case.updated_at <= before)
            if start:
                stmt = stmt.where(Case.created_at >= start)
            if end:
                stmt = stmt.where(Case.created_at <= end)
            order = (Case.updated_at.asc(), Case.id.asc())
        else:
            if not start and not end:
                start = ctx.clock.now() - window
            elif start and not end:
                end = start + window
            elif end and not start:
                start = end - window
            stmt = stmt.where(Case.created_at >= start)
            if end is not None:
                stmt = stmt.where(Case.created_at <= end)
            order = (Case.created_at.desc(), Case.id.desc())
        rows = session.exec(stmt.order_by(*order).limit(limit)).all()
        return records_of(session, list(rows))
