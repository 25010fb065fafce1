"""Read services of people and invitations for API callers, scoped to the caller's area.

What callers may rely on: a person is visible when their area lies inside the key's subtree
(people without an area, i.e. residents, only to keys without an area); anything else raises
`NotVisible`, exactly as something that does not exist. Rows come back as stored; masking personal
data is the caller's rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Actor, Role
from models.tables import Invitation, Person
from services import invitations
from services.api_keys import Principal, area_in_scope, area_subtree
from services.api_views import NotVisible, Page, decode_cursor, encode_cursor
from services.context import ServiceContext


def _has_role(role: Role) -> sa.ColumnElement[bool]:
    # `roles` is a JSON list stored as text ('["resident", "worker"]') on SQLite and PostgreSQL alike.
    return sa.cast(Person.roles, sa.Text).like(f'%"{role.value}"%')


def filtered_people(session: Session, principal: Principal, *, roles: Sequence[Role],
                    area_code: str | None = None, active: bool | None = None) -> sa.Select:
    """SELECT of the people the key may see having any of `roles`; `NotVisible("area")` for a foreign area filter."""
    stmt = select(Person)
    if area_code:
        if not area_in_scope(session, principal, area_code):
            raise NotVisible("area")
        stmt = stmt.where(Person.area_code.in_(area_subtree(area_code)))  # inside the key's subtree: narrower
    elif principal.area_code is not None:
        stmt = stmt.where(Person.area_code.in_(area_subtree(principal.area_code)))
    stmt = stmt.where(sa.or_(*(_has_role(r) for r in roles)))
    if active is not None:
        stmt = stmt.where(Person.active.is_(active))
    return stmt


def visible_person(session: Session, principal: Principal, person_id: int) -> Person:
    """The person, or `NotVisible("person")` when unknown or outside the key's area (the same answer)."""
    person = session.get(Person, person_id)
    if person is None or not area_in_scope(session, principal, person.area_code):
        raise NotVisible("person")
    return person


def list_people(ctx: ServiceContext, *, principal: Principal, roles: Sequence[Role], area_code: str | None,
                active: bool | None, limit: int, cursor: str | None) -> Page[Person]:
    """Newest first; the cursor names the last id returned. Raises `NotVisible("area")` or `BadCursor`."""
    with ctx.sessions() as session:
        stmt = filtered_people(session, principal, roles=roles, area_code=area_code, active=active)
        if cursor:
            stmt = stmt.where(Person.id < decode_cursor(cursor))
        rows = list(session.exec(stmt.order_by(Person.id.desc()).limit(limit + 1)))
        more, rows = len(rows) > limit, rows[:limit]
        return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)


def read_person(ctx: ServiceContext, *, principal: Principal, person_id: int) -> Person:
    """The person as stored; `NotVisible("person")` outside the key's area."""
    with ctx.sessions() as session:
        return visible_person(session, principal, person_id)


@dataclass(frozen=True)
class WorkerDeactivated:
    person: Person  # as stored after the change
    returned: int  # held orders sent back to dispatch
    withdrawn: int  # open offers taken back


def deactivate_worker(ctx: ServiceContext, *, principal: Principal, person_id: int) -> WorkerDeactivated:
    """Deactivate a worker in the key's area, acting as the key's role and naming the key to the worker.

    Raises what `invitations.deactivate_worker_for_office` raises (PersonNotFound, NotAllowed,
    AlreadyInactive, StaleCase); the person is read afresh after the change.
    """
    result = invitations.deactivate_worker_for_office(ctx, worker_id=person_id, within=principal.area_code,
                                                      actor=Actor(principal.acts_as), by_name=principal.name)
    return WorkerDeactivated(read_person(ctx, principal=principal, person_id=person_id),
                             result.returned, result.withdrawn)


# ---------------------------------------------------------------------------- invitations


def ensure_invitation_visible(ctx: ServiceContext, *, principal: Principal, invitation_id: int) -> None:
    """Raises `NotVisible("invitation")` unless the invitation exists inside the key's area."""
    with ctx.sessions() as session:
        row = session.get(Invitation, invitation_id)
        if row is None or not area_in_scope(session, principal, row.area_code):
            raise NotVisible("invitation")


def list_invitations(ctx: ServiceContext, *, principal: Principal, area_code: str | None,
                     state: invitations.InvitationState | None, limit: int,
                     cursor: str | None) -> Page[Invitation]:
    """Invitations to the key's area (or `area_code`'s subtree inside it), newest first, without tokens.

    Raises `NotVisible("area")` for an area outside the key's area, `BadCursor` for a foreign cursor.
    """
    within = principal.area_code
    if area_code:
        with ctx.sessions() as session:
            if not area_in_scope(session, principal, area_code):
                raise NotVisible("area")
        within = area_code
    rows = invitations.list_invitations(ctx, within=within, state=state, limit=limit + 1,
                                        before_id=decode_cursor(cursor) if cursor else None)
    more, rows = len(rows) > limit, rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)
