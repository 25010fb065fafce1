"""Planning spot checks: the day's seed, the round times, the silent grids and the draw (see services/spot_checks.py).

Everything here reads or plans; nothing here tells anybody anything.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.lifecycle import Role
from models.supervision import SpotCheck, SpotCheckRound, SpotCheckStatus
from models.tables import Area, AreaLevel, Case, Person
from services.context import ServiceContext
from services.db import transaction
from services.working_time import WorkingCalendar, area_codes_of, calendar_of


# -- pure parts: the seed, the times, the draw ---------------------------------------------------------


def day_seed(configured: str | None, day: date) -> str:
    """The seed of one city day: derived from the configured seed and the day, else fresh randomness."""
    if not configured:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{configured}|{day.isoformat()}".encode()).hexdigest()[:32]


def round_times(seed: str, day: date, calendar: WorkingCalendar, *, rounds: int,
                answer_minutes: int) -> list[datetime]:
    """`rounds` distinct whole minutes of `day`'s working time (sorted, aware UTC) from which a whole
    answer window of `answer_minutes` still fits in the same working interval. Empty on a day off.

    The usable minutes are cut into `rounds` equal slices and one minute is drawn in each, so the
    rounds spread over the day (no two checks three minutes apart) and stay unpredictable."""
    window = timedelta(minutes=answer_minutes)
    starts: list[tuple[datetime, int]] = []  # (first start, number of start minutes) per interval
    for begin, end in calendar.intervals_on(day):
        last = end - window
        if last >= begin:
            starts.append((begin, int((last - begin).total_seconds() // 60) + 1))
    total = sum(n for _, n in starts)
    if rounds <= 0 or total == 0:
        return []
    rng = random.Random(f"{seed}:times")
    slices = min(rounds, total)
    offsets = [rng.randrange(k * total // slices, (k + 1) * total // slices) for k in range(slices)]
    out = []
    for offset in offsets:
        for begin, n in starts:
            if offset < n:
                out.append(begin + timedelta(minutes=offset))
                break
            offset -= n
    return out


# -- who is silent, who is on duty ----------------------------------------------------------------------


def staffed_grids(session: Session) -> set[str]:
    """Grid codes that have at least one active worker."""
    rows = session.exec(select(Person.area_code, Person.roles).where(
        Person.area_code.is_not(None), Person.active.is_(True), Person.deleted_at.is_(None))).all()
    codes = {code for code, roles in rows if Role.WORKER.value in (roles or [])}
    if not codes:
        return set()
    return set(session.exec(select(Area.code).where(Area.code.in_(codes), Area.level == AreaLevel.GRID)).all())


def silent_grids(session: Session, *, now: datetime, days: int) -> list[str]:
    """Staffed grids with no case created in the `days` days before `now` and no open spot check, sorted."""
    staffed = staffed_grids(session)
    if not staffed:
        return []
    since = now - timedelta(days=days)
    recent = set(session.exec(select(Case.grid_code).where(
        Case.grid_code.in_(staffed), Case.created_at >= since).distinct()).all())
    open_checks = set(session.exec(select(SpotCheck.grid_code).where(
        SpotCheck.status == SpotCheckStatus.PENDING)).all())
    return sorted(staffed - recent - open_checks)


def on_duty_workers(session: Session, grid_code: str) -> list[Person]:
    """Active, reachable, on-duty workers of the grid with no open spot check elsewhere, by id."""
    people = session.exec(select(Person).where(
        Person.area_code == grid_code, Person.on_duty.is_(True), Person.active.is_(True),
        Person.telegram_user_id.is_not(None), Person.deleted_at.is_(None), Person.blocked_bot_at.is_(None),
    ).order_by(Person.id)).all()
    busy = set(session.exec(select(SpotCheck.worker_id).where(SpotCheck.status == SpotCheckStatus.PENDING)).all())
    return [p for p in people if p.has_role(Role.WORKER) and p.id not in busy]


@dataclass(frozen=True)
class Pick:
    grid_code: str
    worker_id: int | None  # None: nobody of the grid is on duty


def draw_sample(session: Session, ctx: ServiceContext, *, seed: str, now: datetime) -> list[Pick]:
    """The grids a round started `now` with `seed` checks, and whom it asks. Reads only."""
    settings = ctx.settings
    candidates = silent_grids(session, now=now, days=settings.spot_check_silent_days)
    calendar = calendar_of(ctx)
    if calendar.area_hours:  # grids with hours of their own are only checked during them
        candidates = [g for g in candidates if calendar.is_working_time(now, area_codes_of(session, g))]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(candidates, min(settings.spot_check_sample, len(candidates))))
    picks = []
    for grid in chosen:
        workers = on_duty_workers(session, grid)
        picks.append(Pick(grid, rng.choice(workers).id if workers else None))
    return picks


# -- the plan of a day ------------------------------------------------------------------------------------


def day_key(day: date) -> str:
    return day.strftime("%Y%m%d")


def plan_day(ctx: ServiceContext, day: date) -> list[SpotCheckRound]:
    """The rounds of a city day: read from the store, or drawn and stored now (once, whoever is first)."""
    settings = ctx.settings
    key = day_key(day)
    with ctx.sessions() as session:
        rows = session.exec(select(SpotCheckRound).where(SpotCheckRound.day == key)
                            .order_by(SpotCheckRound.round)).all()
    if rows:
        return list(rows)
    calendar = calendar_of(ctx)
    seed = day_seed(settings.spot_check_seed, day)
    times = round_times(seed, day, calendar, rounds=settings.spot_check_rounds_per_day,
                        answer_minutes=settings.spot_check_answer_minutes)
    if not times:
        return []
    try:
        with transaction(ctx.sessions) as session:
            for number, at in enumerate(times):
                session.add(SpotCheckRound(day=key, round=number, seed=seed, due_at=at))
    except IntegrityError:
        pass  # another process planned the day first: its plan stands
    with ctx.sessions() as session:
        return list(session.exec(select(SpotCheckRound).where(SpotCheckRound.day == key)
                                 .order_by(SpotCheckRound.round)).all())
