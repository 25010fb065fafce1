"""Staff onboarding by one-time invitation links, and deactivation.

What callers may rely on:
- `create_invitation` returns the token once; the store keeps only its SHA-256 hash (a token
  carries 192 random bits, so a plain hash is enough: nothing to brute-force). Tokens look like
  `inv_` + 32 URL-safe characters, fit Telegram's 64-character `start` parameter, and expire
  after `settings.invitation_ttl_hours`.
- `redeem_invitation` binds a Telegram account to the invitation's role, area and department,
  exactly once: a forged, reused or expired token raises `InvalidInvitation` and binds nothing,
  and two people redeeming one token at the same moment cannot both succeed (conditional update).
- `deactivate_worker` (a supervisor of the worker's area) stops a worker: no new orders, open
  offers withdrawn, held orders sent back to dispatch; work already submitted stays for verification.
  `deactivate_worker_for_office` does the same for the office (an API key) within an area.
- The supervisor's staff list and deactivation live in services/invitation_staff.py, the exceptions in
  services/invitation_errors.py; both are re-exported here. A redeemed invitation is published as
  `InvitationRedeemed`, a deactivation as `WorkerDeactivated` (models/events/staff.py).
- `list_invitations` never returns tokens (only hashes are stored); `revoke_invitation` ends an
  unused invitation at once: from then on its link is refused as expired.
"""

from __future__ import annotations

from services.names import localized
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.staff import InvitationRedeemed
from models.lifecycle import Role
from models.tables import Area, Department, Invitation, Person
from services.locales import normalize_locale
from services import staff_menus
from services.api_keys import area_subtree
from services.context import ServiceContext
from services.db import transaction
from services.invitation_errors import (
    AlreadyInactive,
    BadInvitationRequest,
    InvalidInvitation,
    InvitationError,
    InvitationNotFound,
    InvitationProblem,
    InvitationUsed,
    NotAllowed,
    PersonNotFound,
)
from services.invitation_staff import (
    Deactivation,
    StaffMember,
    StaffPage,
    area_within,
    deactivate_worker,
    deactivate_worker_for_office,
    staff_in_scope,
)

INVITE_PREFIX = "inv_"
TOKEN_PATTERN = re.compile(r"^inv_[A-Za-z0-9_-]{32}$")
STAFF_ROLES = (Role.WORKER, Role.SUPERVISOR)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={token}"


@dataclass(frozen=True)
class IssuedInvitation:
    token: str  # shown once; only its hash is stored
    invitation_id: int
    role: Role
    area_code: str
    department_code: str | None
    expires_at: datetime
    created_at: datetime | None = None


def create_invitation(ctx: ServiceContext, *, role: Role | str, area_code: str, department_code: str | None = None,
                      created_by_id: int | None = None, ttl: timedelta | None = None) -> IssuedInvitation:
    """Issue a one-time invitation for a worker (department required) or a supervisor of `area_code`."""
    try:
        role = Role(role)
    except ValueError:
        raise BadInvitationRequest(f"role must be one of: {', '.join(r.value for r in STAFF_ROLES)}") from None
    if role not in STAFF_ROLES:
        raise BadInvitationRequest(f"role must be one of: {', '.join(r.value for r in STAFF_ROLES)}")
    if role is Role.WORKER and not department_code:
        raise BadInvitationRequest("a worker needs --department: orders are dispatched by department")
    now = ctx.clock.now()
    ttl = ttl or timedelta(hours=ctx.settings.invitation_ttl_hours)
    if ttl <= timedelta(0):
        raise BadInvitationRequest("an invitation must be valid for some time")
    with transaction(ctx.sessions) as session:
        if session.exec(select(Area.id).where(Area.code == area_code)).first() is None:
            raise BadInvitationRequest(f"unknown area {area_code!r}; import the map first (onegrid grids import)")
        if department_code and session.exec(
                select(Department.id).where(Department.code == department_code)).first() is None:
            raise BadInvitationRequest(f"unknown department {department_code!r}; see data/categories.json")
        return issue_in(session, role=role, area_code=area_code, department_code=department_code,
                        created_by_id=created_by_id, expires_at=now + ttl, now=now)


def issue_in(session: Session, *, role: Role, area_code: str, department_code: str | None, expires_at: datetime,
             now: datetime, created_by_id: int | None = None, invitee_name: str | None = None,
             phone: str | None = None) -> IssuedInvitation:
    """Write one invitation row in the caller's transaction (its checks done) and return its token once."""
    token = INVITE_PREFIX + secrets.token_urlsafe(24)
    row = Invitation(token_hash=token_hash(token), role=role, area_code=area_code,
                     department_code=department_code or None, created_by_id=created_by_id,
                     expires_at=expires_at, created_at=now, invitee_name=invitee_name, phone=phone)
    session.add(row)
    session.flush()
    return IssuedInvitation(token, row.id, role, area_code, department_code or None, row.expires_at, now)


@dataclass(frozen=True)
class Binding:
    person_id: int
    role: Role
    area_code: str
    area_name: str
    department_name: str | None
    on_duty: bool


def redeem_invitation(ctx: ServiceContext, *, token: str, telegram_user_id: int | None = None, display_name: str,
                      username: str | None = None, language_code: str | None = None,
                      wecom_userid: str | None = None) -> Binding:
    """Bind the Telegram account (or, with `wecom_userid`, the WeCom member, who then gets their messages
    on WeCom) to the invitation's role and area, creating the person if new."""
    if (telegram_user_id is None) == (wecom_userid is None):
        raise ValueError("give exactly one of telegram_user_id and wecom_userid")
    if not TOKEN_PATTERN.fullmatch(token or ""):
        raise InvalidInvitation(InvitationProblem.FORGED)
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        invitation = session.exec(select(Invitation).where(Invitation.token_hash == token_hash(token))).first()
        if invitation is None:
            raise InvalidInvitation(InvitationProblem.FORGED)
        if invitation.used_at is not None:
            raise InvalidInvitation(InvitationProblem.REUSED)
        if invitation.expires_at <= now:
            raise InvalidInvitation(InvitationProblem.EXPIRED)
        account = (Person.wecom_userid == wecom_userid if wecom_userid is not None
                   else Person.telegram_user_id == telegram_user_id)
        person = session.exec(select(Person).where(account)).first()
        if person is None:
            person = Person(telegram_user_id=telegram_user_id, wecom_userid=wecom_userid,
                            channel="wecom" if wecom_userid is not None else "telegram",
                            display_name=display_name[:200], username=(username or None), roles=[],
                            locale=normalize_locale(language_code, ctx.settings.default_locale), created_at=now)
            session.add(person)
            session.flush()
        # One use: of two people redeeming at once, only the first conditional update counts; a revoke
        # committed meanwhile (expires_at moved to its time) wins too.
        claimed = session.execute(
            sa.update(Invitation).where(Invitation.id == invitation.id, Invitation.used_at.is_(None),
                                        Invitation.expires_at > now)
            .values(used_at=now, used_by_id=person.id)
        ).rowcount
        if claimed != 1:
            used = session.execute(sa.select(Invitation.used_at).where(Invitation.id == invitation.id)).scalar()
            raise InvalidInvitation(InvitationProblem.REUSED if used is not None else InvitationProblem.EXPIRED)
        role = Role(invitation.role)
        person.roles = sorted({*person.roles, role.value})
        person.area_code = invitation.area_code
        if invitation.department_code:
            person.department_code = invitation.department_code
        if invitation.phone and not person.phone:
            person.phone = invitation.phone
        person.active = True
        person.display_name = person.display_name or display_name[:200]
        session.add(person)
        area = session.exec(select(Area).where(Area.code == invitation.area_code)).first()
        department = (session.exec(select(Department).where(Department.code == person.department_code)).first()
                      if person.department_code else None)
        ctx.publish(session, InvitationRedeemed(invitation_id=invitation.id, person_id=person.id, role=role,
                                                area_code=invitation.area_code,
                                                department_code=invitation.department_code,
                                                display_name=display_name[:200]))
        staff_menus.queue_menu(session, ctx, person)  # after the welcome: one chat's messages keep their order
        locale = person.locale
        return Binding(person.id, role, invitation.area_code, localized(area, locale, invitation.area_code),
                       localized(department, locale, person.department_code or "") if department else None,
                       person.on_duty)


class InvitationState(StrEnum):
    OPEN = "open"  # can be redeemed until it expires
    USED = "used"
    EXPIRED = "expired"  # its time ran out unused
    REVOKED = "revoked"  # ended early by an office (`revoke_invitation`)


def invitation_state(invitation: Invitation, now: datetime) -> InvitationState:
    if invitation.used_at is not None:
        return InvitationState.USED
    if invitation.revoked_at is not None:
        return InvitationState.REVOKED
    if invitation.expires_at <= now:
        return InvitationState.EXPIRED
    return InvitationState.OPEN


def list_invitations(ctx: ServiceContext, *, within: str | None = None, state: InvitationState | None = None,
                     before_id: int | None = None, limit: int = 50) -> list[Invitation]:
    """Invitations for areas in `within`'s subtree (None: all), newest first, below `before_id` if given.

    Rows carry the token's hash only; the token itself exists nowhere after `create_invitation`.
    """
    now = ctx.clock.now()
    stmt = select(Invitation).order_by(Invitation.id.desc())
    if before_id is not None:
        stmt = stmt.where(Invitation.id < before_id)
    if state is InvitationState.USED:
        stmt = stmt.where(Invitation.used_at.is_not(None))
    elif state is InvitationState.OPEN:
        stmt = stmt.where(Invitation.used_at.is_(None), Invitation.expires_at > now)
    elif state is InvitationState.EXPIRED:
        stmt = stmt.where(Invitation.used_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at <= now)
    elif state is InvitationState.REVOKED:
        stmt = stmt.where(Invitation.used_at.is_(None), Invitation.revoked_at.is_not(None))
    if within is not None:
        stmt = stmt.where(Invitation.area_code.in_(area_subtree(within)))
    with ctx.sessions() as session:
        return list(session.exec(stmt.limit(limit)).all())


def revoke_invitation(ctx: ServiceContext, *, invitation_id: int, within: str | None = None) -> Invitation:
    """End an unused invitation now: its link is refused (as expired) from then on, and it is listed as revoked.

    Revoking an invitation that has expired (or was revoked) already changes nothing. Raises InvitationNotFound
    (unknown, or its area lies outside `within`'s subtree: nothing changes) or InvitationUsed.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        invitation = session.get(Invitation, invitation_id)
        if invitation is None or not area_within(session, invitation.area_code, within):
            raise InvitationNotFound(str(invitation_id))
        if invitation.used_at is not None:
            raise InvitationUsed(str(invitation_id))
        # A conditional update, so a redeem racing this revoke either wins before it or fails after.
        session.execute(sa.update(Invitation).where(
            Invitation.id == invitation.id, Invitation.used_at.is_(None), Invitation.expires_at > now,
        ).values(expires_at=now, revoked_at=now))
        session.refresh(invitation)
        if invitation.used_at is not None:
            raise InvitationUsed(str(invitation_id))
        return invitation


__all__ = [
    "INVITE_PREFIX",
    "AlreadyInactive",
    "BadInvitationRequest",
    "Binding",
    "Deactivation",
    "IssuedInvitation",
    "InvalidInvitation",
    "InvitationError",
    "InvitationNotFound",
    "InvitationProblem",
    "InvitationState",
    "InvitationUsed",
    "NotAllowed",
    "PersonNotFound",
    "StaffMember",
    "StaffPage",
    "area_within",
    "create_invitation",
    "deactivate_worker",
    "deactivate_worker_for_office",
    "invitation_link",
    "invitation_state",
    "issue_in",
    "list_invitations",
    "redeem_invitation",
    "revoke_invitation",
    "staff_in_scope",
    "token_hash",
]
