"""The report's one-tap categories on a real store (SQLite and PostgreSQL), against hand-counted cases."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from models.lifecycle import Actor, Role
from models.resident import ReportKind, ReportReceipt
from models.tables import Category, Person
from onegrid.settings import Settings
from onegrid.wiring import make_bus
from services import cases
from services.context import ServiceContext
from services.db import transaction
from services.gridmap import GridMap
from services.reference import bump
from services.report_shortcuts import FREQUENT_TTL, FREQUENT_WINDOW, shortcut_categories
from models.tables import CaseSource
from tests.bot.resident_kit import ELSEWHERE, INSIDE, offset, seed


@pytest.fixture
def ctx(db, clock, tmp_path: Path) -> ServiceContext:
    seed(db.sessions, clock)
    grid_map = GridMap()
    grid_map.rebuild(db.sessions)
    ctx = ServiceContext(bus=make_bus(), sessions=db.sessions, clock=clock, grid_map=grid_map,
                         settings=Settings(_env_file=None, data_dir=tmp_path, database_url=db.url))
    return replace(ctx, on_registered=None)


def person(ctx: ServiceContext, telegram_user_id: int) -> int:
    with transaction(ctx.sessions) as s:
        p = Person(telegram_user_id=telegram_user_id, roles=["resident"], locale="en",
                   consented_at=ctx.clock.now(), created_at=ctx.clock.now())
        s.add(p)
        s.flush()
        return p.id


def case(ctx: ServiceContext, category: str, where: tuple[float, float], *, reporter: int | None = None,
         n: int = 0) -> None:
    """A case of `category` at `where` (moved `n` × 5 m east, so none is on another's spot)."""
    def receipt(session, row) -> None:  # noqa: ANN001
        if reporter is not None:
            session.add(ReportReceipt(person_id=reporter, draft_id=secrets.token_hex(4), case_id=row.id,
                                      kind=ReportKind.NEW_CASE, created_at=ctx.clock.now()))

    lat, lon = offset(where, east_m=5 * n)
    cases.report_case(ctx, actor=Actor(Role.RESIDENT if reporter else Role.SYSTEM, reporter),
                      source=CaseSource.RESIDENT, category_code=category, lat=lat, lon=lon, before_dispatch=receipt)


def codes(found) -> tuple[list[str], list[str]]:  # noqa: ANN001
    return [c.code for c in found.recent], [c.code for c in found.frequent]


def test_an_empty_store_offers_no_shortcuts(ctx) -> None:
    assert codes(shortcut_categories(ctx, person_id=person(ctx, 1))) == ([], [])
    assert codes(shortcut_categories(ctx, person_id=None)) == ([], [])


def test_the_residents_own_grid_ranks_first_then_the_whole_store(ctx, clock) -> None:
    ann = person(ctx, 1)
    # Ann's grid (SH-CN-01-001): street_stall 2, exposed_garbage 1, fire_hazard 1 (Ann's own report).
    case(ctx, "street_stall", INSIDE, n=1)
    case(ctx, "street_stall", INSIDE, n=2)
    case(ctx, "exposed_garbage", INSIDE, n=3)
    clock.advance(minutes=1)
    case(ctx, "fire_hazard", INSIDE, reporter=ann, n=4)
    # The next grid: illegal_parking 3, exposed_garbage 2.
    for n in range(3):
        case(ctx, "illegal_parking", ELSEWHERE, n=n)
    for n in range(3, 5):
        case(ctx, "exposed_garbage", ELSEWHERE, n=n)
    # Store: exposed_garbage 3, illegal_parking 3 (a tie: the catalogue lists exposed_garbage first),
    # street_stall 2, fire_hazard 1.
    assert codes(shortcut_categories(ctx, person_id=ann)) == (
        ["fire_hazard"],  # her own, newest first
        ["street_stall", "exposed_garbage", "illegal_parking"])  # her grid's, then the store's; four in all
    bob = person(ctx, 2)  # no report yet: the whole store
    assert codes(shortcut_categories(ctx, person_id=bob)) == (
        [], ["exposed_garbage", "illegal_parking", "street_stall", "fire_hazard"])


def test_old_cases_and_withdrawn_categories_do_not_count(ctx, clock) -> None:
    for n in range(3):
        case(ctx, "renovation_waste", INSIDE, n=n)
    clock.advance(seconds=(FREQUENT_WINDOW + timedelta(days=1)).total_seconds())
    case(ctx, "street_stall", INSIDE, n=5)
    case(ctx, "illegal_posting", INSIDE, n=6)
    with transaction(ctx.sessions) as s:
        s.exec(select(Category).where(Category.code == "illegal_posting")).one().active = False
        bump(s)
    assert codes(shortcut_categories(ctx, person_id=None)) == ([], ["street_stall"])


def test_counts_are_read_again_after_a_while(ctx, clock) -> None:
    case(ctx, "street_stall", INSIDE)
    assert codes(shortcut_categories(ctx, person_id=None)) == ([], ["street_stall"])
    for n in range(1, 3):
        case(ctx, "exposed_garbage", INSIDE, n=n)
    assert codes(shortcut_categories(ctx, person_id=None)) == ([], ["street_stall"])  # the counts held
    clock.advance(seconds=FREQUENT_TTL.total_seconds())
    assert codes(shortcut_categories(ctx, person_id=None)) == ([], ["exposed_garbage", "street_stall"])
