"""Invitations on a real store (SQLite and PostgreSQL): one use, expiry, forgery, hashing, and a race."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import func, select

from models.lifecycle import Role
from models.tables import Invitation, Person
from services import invitations
from services.context import ServiceContext
from tests.worker_support import GRID, STREET, make_ctx


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def people(db) -> int:
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(Person)).one()


def redeem(ctx, token: str, user_id: int) -> invitations.Binding:  # noqa: ANN001
    return invitations.redeem_invitation(ctx, token=token, telegram_user_id=user_id, display_name=f"User {user_id}",
                                         language_code="zh-hans")


def test_only_the_hash_is_stored_and_the_link_binds_role_area_and_department(ctx, db) -> None:
    issued = invitations.create_invitation(ctx, role="worker", area_code=GRID, department_code="urban_management")
    assert invitations.TOKEN_PATTERN.fullmatch(issued.token) and len(issued.token) <= 64
    assert invitations.invitation_link("@onegrid_bot", issued.token) == f"https://t.me/onegrid_bot?start={issued.token}"
    with db.sessions() as s:
        row = s.exec(select(Invitation)).one()
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest() and issued.token not in row.token_hash

    binding = redeem(ctx, issued.token, 801)
    assert (binding.role, binding.area_code, binding.department_name) == (
        Role.WORKER, GRID, "城管执法局")  # a Chinese Telegram: names in Chinese
    with db.sessions() as s:
        person = s.exec(select(Person).where(Person.telegram_user_id == 801)).one()
        used = s.exec(select(Invitation)).one()
    assert (person.roles, person.area_code, person.department_code, person.locale, person.on_duty) == (
        ["worker"], GRID, "urban_management", "zh_CN", False)
    assert (used.used_by_id, used.used_at) == (person.id, ctx.clock.now())


def test_reused_expired_and_forged_tokens_bind_nothing(ctx, db, clock) -> None:
    used = invitations.create_invitation(ctx, role="supervisor", area_code=STREET)
    redeem(ctx, used.token, 811)
    expiring = invitations.create_invitation(ctx, role="supervisor", area_code=STREET, ttl=timedelta(hours=1))
    before = people(db)
    clock.advance(hours=1)
    cases = [(used.token, invitations.InvitationProblem.REUSED),
             (expiring.token, invitations.InvitationProblem.EXPIRED),
             ("inv_" + "A" * 32, invitations.InvitationProblem.FORGED),
             (used.token[:-1], invitations.InvitationProblem.FORGED),
             ("'; drop table person; --", invitations.InvitationProblem.FORGED)]
    for token, problem in cases:
        with pytest.raises(invitations.InvalidInvitation) as refused:
            redeem(ctx, token, 812)
        assert refused.value.problem is problem
    assert people(db) == before


def test_two_people_redeeming_one_link_at_once_cannot_both_win(ctx, db) -> None:
    for _round in range(3):
        issued = invitations.create_invitation(ctx, role="supervisor", area_code=STREET)
        barrier = threading.Barrier(2)

        def attempt(user_id: int):  # noqa: ANN202
            barrier.wait()
            try:
                return redeem(ctx, issued.token, user_id)
            except invitations.InvalidInvitation as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(attempt, [820 + _round * 2, 821 + _round * 2]))
        assert sum(isinstance(r, invitations.Binding) for r in results) == 1, results
        with db.sessions() as s:
            holders = s.exec(select(Person).where(Person.telegram_user_id.in_([820 + _round * 2, 821 + _round * 2]),
                                                  Person.area_code == STREET)).all()
        assert len(holders) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "resident", "area_code": GRID}, "role must be one of"),
    ({"role": "worker", "area_code": GRID}, "needs --department"),
    ({"role": "worker", "area_code": "SH-NOWHERE", "department_code": "urban_management"}, "unknown area"),
    ({"role": "worker", "area_code": GRID, "department_code": "ministry_of_magic"}, "unknown department"),
])
def test_bad_requests_are_refused_in_plain_words(ctx, db, kwargs, message) -> None:
    with pytest.raises(invitations.BadInvitationRequest, match=message):
        invitations.create_invitation(ctx, **kwargs)
    with db.sessions() as s:
        assert s.exec(select(Invitation)).all() == []
