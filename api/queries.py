"""Read-side queries of the API: filtered, area-scoped case and people lists with cursors, cards, exports.

Reads only; every query applies the caller's area scope (`services.api_keys.case_scope_clause`
for cases, the person's area for people), so nothing outside the key's area is ever listed,
counted, exported or shown.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from api.deps import ApiError, not_found
from api.schemas import (
    CasePublic,
    CaseWithTimeline,
    EventPublic,
    PersonDetail,
    PersonPublic,
    PersonRoleFilter,
    mask_name,
    mask_phone,
)
from models.api import Scope
from models.lifecycle import Role, Status
from models.tables import Case, CaseEvent, CaseSource, Person
from services.api_keys import Principal, area_in_scope, area_subtree, case_in_scope, case_scope_clause

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


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["before"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ApiError(422, "bad_cursor", "cursor is not one this API gave out") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(422, "bad_cursor", "cursor is not one this API gave out")
    return value


def filtered_cases(session: Session, principal: Principal, flt: CaseFilter) -> sa.Select:
    """SELECT of the cases the key may see that match `flt`; 404 when the area filter is outside the key's area."""
    if flt.area_code:
        if not area_in_scope(session, principal, flt.area_code):
            raise not_found("no such area")
        # Inside the key's subtree, so this is the narrower scope (and one subtree CTE per statement).
        stmt = select(Case).where(Case.grid_code.in_(area_subtree(flt.area_code)))
    else:
        stmt = select(Case).where(case_scope_clause(principal))
    for status in flt.statuses:
        if status not in {s.value for s in Status}:
            raise ApiError(422, "bad_filter", f"unknown status {status!r}")
    if flt.statuses:
        stmt = stmt.where(Case.status.in_(flt.statuses))
    if flt.category_code:
        stmt = stmt.where(Case.category_code == flt.category_code)
    if flt.source:
        if flt.source not in {s.value for s in CaseSource}:
            raise ApiError(422, "bad_filter", f"unknown source {flt.source!r}")
        stmt = stmt.where(Case.source == flt.source)
    if flt.created_from:
        stmt = stmt.where(Case.created_at >= flt.created_from)
    if flt.created_to:
        stmt = stmt.where(Case.created_at < flt.created_to)
    if flt.updated_after:
        stmt = stmt.where(Case.updated_at > flt.updated_after)
    return stmt


def _people(session: Session, ids: Iterable[int | None]) -> dict[int, Person]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in session.exec(select(Person).where(Person.id.in_(wanted)))}


def person_public(person: Person | None, principal: Principal) -> PersonPublic | None:
    if person is None:
        return None
    if principal.allows(Scope.PII):
        return PersonPublic(id=person.id, display_name=person.display_name, phone=person.phone)
    return PersonPublic(id=person.id, display_name=mask_name(person.display_name) or "",
                        phone=mask_phone(person.phone))


def case_public(case: Case, principal: Principal, people: dict[int, Person]) -> CasePublic:
    return CasePublic(
        id=case.id, number=case.number, status=str(case.status), source=str(case.source),
        category_code=case.category_code, description=case.description, lat=case.lat, lon=case.lon,
        address=case.address, media_urls=list(case.media_urls or []), grid_code=case.grid_code,
        report_count=case.report_count, external_id=case.external_id,
        reporter=person_public(people.get(case.reporter_id), principal),
        assignee=person_public(people.get(case.assignee_id), principal),
        accept_due_at=case.accept_due_at, handle_due_at=case.handle_due_at, created_at=case.created_at,
        updated_at=case.updated_at, closed_at=case.closed_at, version=case.version,
    )


def render_cases(session: Session, principal: Principal, rows: list[Case]) -> list[CasePublic]:
    people = _people(session, [c.reporter_id for c in rows] + [c.assignee_id for c in rows])
    return [case_public(c, principal, people) for c in rows]


def page_of_cases(session: Session, principal: Principal, flt: CaseFilter, *, limit: int,
                  cursor: str | None) -> tuple[list[CasePublic], str | None]:
    """Newest first; the cursor names the last id returned."""
    stmt = filtered_cases(session, principal, flt).order_by(Case.id.desc())
    if cursor:
        stmt = stmt.where(Case.id < decode_cursor(cursor))
    rows = list(session.exec(stmt.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return render_cases(session, principal, rows), (encode_cursor(rows[-1].id) if more and rows else None)


def visible_case(session: Session, principal: Principal, case_id: int) -> Case:
    """The case, or 404 when it does not exist or lies outside the key's area (the same answer)."""
    case = session.get(Case, case_id)
    if case is None or not case_in_scope(session, principal, case):
        raise not_found("no such case")
    return case


def case_card(session: Session, principal: Principal, case: Case) -> CaseWithTimeline:
    events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)).all()
    base = render_cases(session, principal, [case])[0]
    return CaseWithTimeline(**base.model_dump(), timeline=[
        EventPublic(at=e.at, action=str(e.action), from_status=str(e.from_status) if e.from_status else None,
                    to_status=str(e.to_status), actor_role=str(e.actor_role), note=e.note) for e in events])


def iter_cases(session: Session, principal: Principal, flt: CaseFilter, *, limit: int,
               batch: int = 500) -> Iterator[CasePublic]:
    """Cases for an export, newest first, read in batches so memory stays flat."""
    last: int | None = None
    left = limit
    while left > 0:
        stmt = filtered_cases(session, principal, flt).order_by(Case.id.desc())
        if last is not None:
            stmt = stmt.where(Case.id < last)
        rows = list(session.exec(stmt.limit(min(batch, left))))
        if not rows:
            return
        yield from render_cases(session, principal, rows)
        last = rows[-1].id
        left -= len(rows)


EXPORT_COLUMNS = ("id", "number", "status", "source", "category_code", "grid_code", "lat", "lon", "address",
                  "description", "report_count", "created_at", "updated_at", "closed_at", "handle_due_at")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def geojson_feature(case: CasePublic) -> dict[str, Any]:
    props = case.model_dump(mode="json", exclude={"lat", "lon"})
    return {"type": "Feature", "id": case.id, "geometry": {"type": "Point", "coordinates": [case.lon, case.lat]},
            "properties": props}


# ---------------------------------------------------------------------------- people


def _has_role(role: Role) -> sa.ColumnElement[bool]:
    # `roles` is a JSON list stored as text ('["resident", "worker"]') on SQLite and PostgreSQL alike.
    return sa.cast(Person.roles, sa.Text).like(f'%"{role.value}"%')


def filtered_people(session: Session, principal: Principal, *, role: PersonRoleFilter,
                    area_code: str | None = None, active: bool | None = None) -> sa.Select:
    """SELECT of the people the key may see (their area inside the key's subtree) matching the filters.

    404 when the area filter lies outside the key's area. People without an area (residents) are
    visible to keys without an area only.
    """
    stmt = select(Person)
    if area_code:
        if not area_in_scope(session, principal, area_code):
            raise not_found("no such area")
        stmt = stmt.where(Person.area_code.in_(area_subtree(area_code)))  # inside the key's subtree: narrower
    elif principal.area_code is not None:
        stmt = stmt.where(Person.area_code.in_(area_subtree(principal.area_code)))
    if role is PersonRoleFilter.STAFF:
        stmt = stmt.where(sa.or_(_has_role(Role.WORKER), _has_role(Role.SUPERVISOR)))
    else:
        stmt = stmt.where(_has_role(Role(role.value)))
    if active is not None:
        stmt = stmt.where(Person.active.is_(active))
    return stmt


def person_detail(person: Person, principal: Principal) -> PersonDetail:
    """The person as the key may see them (see `PersonDetail` for what is masked)."""
    pii = principal.allows(Scope.PII)
    staff = person.has_role(Role.WORKER) or person.has_role(Role.SUPERVISOR)
    return PersonDetail(
        id=person.id, display_name=person.display_name if pii or staff else (mask_name(person.display_name) or ""),
        phone=person.phone if pii else mask_phone(person.phone),
        telegram_user_id=person.telegram_user_id if pii else None, username=person.username if pii else None,
        roles=sorted(person.roles or []), area_code=person.area_code, department_code=person.department_code,
        active=person.active, on_duty=person.on_duty, deleted=person.deleted_at is not None,
        created_at=person.created_at,
    )


def page_of_people(session: Session, principal: Principal, *, role: PersonRoleFilter, area_code: str | None,
                   active: bool | None, limit: int, cursor: str | None) -> tuple[list[PersonDetail], str | None]:
    """Newest first; the cursor names the last id returned."""
    stmt = filtered_people(session, principal, role=role, area_code=area_code, active=active)
    if cursor:
        stmt = stmt.where(Person.id < decode_cursor(cursor))
    rows = list(session.exec(stmt.order_by(Person.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return [person_detail(p, principal) for p in rows], (encode_cursor(rows[-1].id) if more and rows else None)


def visible_person(session: Session, principal: Principal, person_id: int) -> Person:
    """The person, or 404 when they do not exist or their area lies outside the key's area (the same answer)."""
    person = session.get(Person, person_id)
    if person is None or not area_in_scope(session, principal, person.area_code):
        raise not_found("no such person")
    return person
