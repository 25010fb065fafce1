"""The round-the-clock duty roster per area (street or grid), and gaps in its coverage.

What callers may rely on:
- A shift covers its weekdays (of the day it starts) from `start` to `end` local time
  (ONEGRID_TIMEZONE); an end at or before the start runs past midnight. Only active workers are put
  on the roster (they accept welfare checks like any order).
- `on_call(session, grid, at)`: the workers whose shift at the grid or at its street covers `at`,
  whether or not they are on normal duty.
- `check_gaps(ctx)` (a scheduled job) looks at every area with shifts or listed elders for time
  nobody covers, now or within `coverage_lookahead_hours`, and publishes `CoverageGapFound` to the
  area's street supervisors once per gap (a `CoverageGap` row keyed by the gap's start records it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.elders import CoverageGap, DutyShift, Elder
from models.events.alarms import CoverageGapFound
from models.lifecycle import Role
from models.tables import Area, AreaLevel, Person, reachable
from services.api_keys import Principal, area_in_scope
from services.areas import area_chain
from services.context import ServiceContext
from services.db import transaction

LOOKBACK = timedelta(days=7)  # the roster repeats weekly: a gap older than this never closes
ALWAYS = datetime(2000, 1, 1, tzinfo=UTC)  # the start recorded for a gap that has no start in the past week
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$|^24:00$")
DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class RosterError(ValueError):
    """The shift cannot be stored; the message says why."""


class ShiftNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ShiftInput:
    area_code: str
    person_id: int
    weekdays: list[int]
    start: str  # HH:MM
    end: str  # HH:MM


def parse_weekdays(text: str) -> list[int]:
    """`mon-fri`, `sat,sun`, `daily`, `1-5` (1 = Monday) → sorted 0-based weekdays. Raises RosterError."""
    text = text.strip().lower()
    if text in ("daily", "all", "*", "mon-sun"):
        return list(range(7))
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        a, b = _day(lo), _day(hi or lo)
        if b < a:
            raise RosterError(f"weekday range {part!r} runs backwards")
        out.update(range(a, b + 1))
    if not out:
        raise RosterError("give weekdays, e.g. mon-fri, sat,sun or daily")
    return sorted(out)


def _day(token: str) -> int:
    token = token.strip()[:3]
    if token in DAYS:
        return DAYS[token]
    if token.isdigit() and 1 <= int(token) <= 7:
        return int(token) - 1
    raise RosterError(f"{token!r} is not a weekday (mon..sun or 1..7)")


def _minute(text: str) -> int:
    if not _HHMM.match(text.strip()):
        raise RosterError(f"{text!r} is not a time HH:MM")
    hours, minutes = text.strip().split(":")
    return int(hours) * 60 + int(minutes)


# -- managing shifts ------------------------------------------------------------------------------------


def add_shift(ctx: ServiceContext, *, principal: Principal | None, data: ShiftInput) -> DutyShift:
    start, end = _minute(data.start), _minute(data.end)
    if not data.weekdays or any(d not in range(7) for d in data.weekdays):
        raise RosterError("weekdays are 0 (Monday) .. 6 (Sunday)")
    with transaction(ctx.sessions) as session:
        area = session.exec(select(Area).where(Area.code == data.area_code)).first()
        if area is None or area.level not in (AreaLevel.STREET, AreaLevel.GRID):
            raise RosterError(f"{data.area_code} is not a street or a grid")
        if principal is not None and not area_in_scope(session, principal, area.code):
            raise RosterError(f"{data.area_code} is outside this key's area")
        person = session.get(Person, data.person_id)
        if person is None or not person.active or not person.has_role(Role.WORKER) or person.deleted_at:
            raise RosterError(f"person {data.person_id} is not an active grid worker")
        shift = DutyShift(area_code=area.code, person_id=person.id, weekdays=sorted(set(data.weekdays)),
                          start_minute=start % 1440, end_minute=end % 1440, created_at=ctx.clock.now())
        session.add(shift)
        session.flush()
        return shift


def remove_shift(ctx: ServiceContext, *, principal: Principal | None, shift_id: int) -> None:
    with transaction(ctx.sessions) as session:
        shift = session.get(DutyShift, shift_id)
        if shift is None or (principal is not None and not area_in_scope(session, principal, shift.area_code)):
            raise ShiftNotFound(str(shift_id))
        session.delete(shift)


def list_shifts(ctx: ServiceContext, *, principal: Principal | None, area_code: str | None = None) -> list[DutyShift]:
    with ctx.sessions() as session:
        query = select(DutyShift).order_by(DutyShift.area_code, DutyShift.start_minute, DutyShift.id)
        if area_code:
            query = query.where(DutyShift.area_code == area_code)
        return [s for s in session.exec(query).all()
                if principal is None or area_in_scope(session, principal, s.area_code)]


# -- coverage -------------------------------------------------------------------------------------------


def covering_areas(session: Session, area_code: str) -> list[str]:
    """The area and, for a grid, its street: whose shifts cover it."""
    out = []
    for area in area_chain(session, area_code):
        out.append(area.code)
        if area.level == AreaLevel.STREET:
            break
    return out or [area_code]


def _intervals(shift: DutyShift, lo: datetime, hi: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    out = []
    day: date = lo.astimezone(tz).date() - timedelta(days=1)
    last = hi.astimezone(tz).date()
    while day <= last:
        if day.weekday() in shift.weekdays:
            midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
            length = (shift.end_minute - shift.start_minute) % 1440 or 1440
            start = (midnight + timedelta(minutes=shift.start_minute)).astimezone(UTC)
            out.append((start, start + timedelta(minutes=length)))
        day += timedelta(days=1)
    return [(max(a, lo), min(b, hi)) for a, b in out if b > lo and a < hi]


def _shifts_for(session: Session, area_code: str) -> list[DutyShift]:
    return list(session.exec(select(DutyShift).where(DutyShift.area_code.in_(covering_areas(session, area_code)))).all())


def on_call(session: Session, ctx: ServiceContext, grid_code: str, at: datetime) -> list[Person]:
    """Active, reachable workers whose shift at the grid or its street covers `at` (normal duty not needed)."""
    tz = ZoneInfo(ctx.settings.timezone)
    ids: list[int] = []
    for shift in _shifts_for(session, grid_code):
        if shift.person_id not in ids and _intervals(shift, at, at + timedelta(seconds=1), tz):
            ids.append(shift.person_id)
    if not ids:
        return []
    people = session.exec(select(Person).where(Person.id.in_(ids), Person.active.is_(True), reachable(),
                                               Person.deleted_at.is_(None))).all()
    return sorted(people, key=lambda p: ids.index(p.id))


def gaps(session: Session, ctx: ServiceContext, area_code: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """Uncovered stretches of [now, now + lookahead], each with its true start (ALWAYS: none in the past week)."""
    return uncovered(_shifts_for(session, area_code), now, timedelta(hours=ctx.settings.coverage_lookahead_hours),
                     ZoneInfo(ctx.settings.timezone))


def uncovered(shifts: list[DutyShift], now: datetime, ahead: timedelta,
              tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The stretches of [now, now + ahead] no shift covers (pure; see `gaps`)."""
    lo, hi = now - LOOKBACK, now + ahead
    covered = sorted(i for s in shifts for i in _intervals(s, lo, hi, tz))
    out, cursor = [], lo
    for start, end in covered + [(hi, hi)]:
        if start > cursor and start > now:
            out.append((ALWAYS if cursor == lo else cursor, start))
        cursor = max(cursor, end)
    return out


def street_supervisors(session: Session, area_code: str) -> list[Person]:
    """Active supervisors of the area's street, or of the nearest area above with any."""
    chain = area_chain(session, area_code)
    start = next((i for i, a in enumerate(chain) if a.level == AreaLevel.STREET), 0)
    for area in chain[start:]:
        people = session.exec(select(Person).where(Person.area_code == area.code, Person.active.is_(True),
                                                   reachable(), Person.deleted_at.is_(None)).order_by(Person.id)).all()
        found = [p for p in people if p.has_role(Role.SUPERVISOR)]
        if found:
            return found
    return []


def check_gaps(ctx: ServiceContext) -> int:
    """Tell the street supervisors about each new gap in coverage; returns how many were new."""
    new = 0
    with transaction(ctx.sessions) as session:
        now = ctx.clock.now()
        areas = set(session.exec(select(DutyShift.area_code)).all())
        areas |= set(session.exec(select(Elder.grid_code).where(Elder.ended_at.is_(None))).all())
        for code in sorted(areas):
            for start, end in gaps(session, ctx, code, now):
                if _record_gap(session, ctx, code, start, end, now):
                    new += 1
    if new:
        ctx.on_notifications()
    return new


def _record_gap(session: Session, ctx: ServiceContext, code: str, start: datetime, end: datetime,
                now: datetime) -> bool:
    known = session.exec(select(CoverageGap).where(CoverageGap.area_code == code,
                                                   CoverageGap.starts_at == start)).first()
    if known is not None:
        if end > known.ends_at:
            known.ends_at = end
            session.add(known)
        return False
    row = CoverageGap(area_code=code, starts_at=start, ends_at=end, alerted_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # another process recorded it first
        return False
    ctx.publish(session, CoverageGapFound(
        gap_id=row.id, area_code=code, starts_at=None if start == ALWAYS else start, ends_at=end,
        uncovered_now=start <= now, open_ended=end >= now + timedelta(hours=ctx.settings.coverage_lookahead_hours),
        supervisor_ids=tuple(p.id for p in street_supervisors(session, code))))
    return True
