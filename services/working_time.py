"""The working calendar: which minutes count towards a deadline.

Working days are China's (weekends off, public holidays off, make-up working days 调休 on)
from the `holidays` library, corrected by data/calendar_overrides.json (a day the State Council
moved late, a district's own day off). Working hours are per area: the nearest area of a case's
chain (grid → street → district → city) with hours of its own wins, else the file's default.

What callers may rely on: every function takes and returns aware UTC datetimes; `add` never
returns a time outside working hours (a deadline lands at the end of a working interval at the
latest); `minutes_between(a, add(a, n)) == n` for minute units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from services.areas import area_chain

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
OVERRIDES_FILE = DATA_DIR / "calendar_overrides.json"
DEFAULT_HOURS = (("08:30", "12:00"), ("13:00", "17:30"))
UNITS = ("minutes", "hours", "days", "clock_minutes")
_MAX_DAYS_SCANNED = 400  # a calendar without a working day in a year is a broken file, not a long wait


class CalendarError(ValueError):
    """The override file or a unit is wrong; the message says what."""


Interval = tuple[time, time]


def _parse_hours(raw: list, where: str) -> tuple[Interval, ...]:
    out: list[Interval] = []
    for pair in raw:
        try:
            start, end = time.fromisoformat(pair[0]), time.fromisoformat(pair[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise CalendarError(f"{where}: working hours must be [\"HH:MM\", \"HH:MM\"] pairs") from exc
        if end <= start:
            raise CalendarError(f"{where}: {pair[0]}-{pair[1]} ends before it starts")
        out.append((start, end))
    out.sort()
    for (_, e1), (s2, _) in zip(out, out[1:], strict=False):
        if s2 < e1:
            raise CalendarError(f"{where}: working hours overlap")
    return tuple(out)


@dataclass
class WorkingCalendar:
    timezone: str = "Asia/Shanghai"
    default_hours: tuple[Interval, ...] = field(default_factory=lambda: _parse_hours(list(DEFAULT_HOURS), "default"))
    area_hours: dict[str, tuple[Interval, ...]] = field(default_factory=dict)
    extra_days_off: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.timezone)
        self._cn = holidays.country_holidays("CN")

    @classmethod
    def from_file(cls, path: Path = OVERRIDES_FILE, *, timezone: str = "Asia/Shanghai") -> WorkingCalendar:
        """Read an override file: {"default_hours": [[..]], "area_hours": {code: [[..]]},
        "days_off": ["YYYY-MM-DD"], "working_days": ["YYYY-MM-DD"]}. A missing file means no overrides."""
        if not path.exists():
            return cls(timezone=timezone)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            days_off = frozenset(date.fromisoformat(d) for d in doc.get("days_off", []))
            working = frozenset(date.fromisoformat(d) for d in doc.get("working_days", []))
        except (ValueError, TypeError) as exc:
            raise CalendarError(f"{path}: {exc}") from exc
        if days_off & working:
            raise CalendarError(f"{path}: days both off and working: {sorted(days_off & working)}")
        default = _parse_hours(doc.get("default_hours", list(DEFAULT_HOURS)), "default_hours")
        areas = {code: _parse_hours(raw, f"area_hours.{code}") for code, raw in doc.get("area_hours", {}).items()}
        return cls(timezone=timezone, default_hours=default, area_hours=areas, extra_days_off=days_off,
                   extra_working_days=working)

    # -- days and hours -------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.extra_days_off:
            return False
        return self._cn.is_working_day(day)  # weekends, holidays and 调休 make-up days

    def hours_for(self, area_codes: list[str] | tuple[str, ...] = ()) -> tuple[Interval, ...]:
        """Working hours of the nearest area (codes nearest first) that has its own, else the default."""
        for code in area_codes:
            if code in self.area_hours:
                return self.area_hours[code]
        return self.default_hours

    def intervals_on(self, day: date, area_codes: tuple[str, ...] = ()) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local day, as aware UTC pairs (empty on a day off)."""
        if not self.is_working_day(day):
            return []
        return [(datetime.combine(day, s, self.tz).astimezone(UTC), datetime.combine(day, e, self.tz).astimezone(UTC))
                for s, e in self.hours_for(area_codes)]

    def is_working_time(self, at: datetime, area_codes: tuple[str, ...] = ()) -> bool:
        day = at.astimezone(self.tz).date()
        return any(s <= at < e for s, e in self.intervals_on(day, area_codes))

    def _intervals_from(self, start: datetime, area_codes: tuple[str, ...]):  # noqa: ANN202
        day = start.astimezone(self.tz).date()
        for offset in range(_MAX_DAYS_SCANNED):
            for s, e in self.intervals_on(day + timedelta(days=offset), area_codes):
                if e > start:
                    yield max(s, start), e
        raise CalendarError(f"no working time within {_MAX_DAYS_SCANNED} days of {start.isoformat()}")

    # -- arithmetic -----------------------------------------------------------------------------

    def add(self, start: datetime, amount: int, unit: str = "minutes", area_codes: tuple[str, ...] = ()) -> datetime:
        """The moment `amount` working `unit`s after `start`.

        clock_minutes: plain minutes, around the clock. minutes / hours: working time counted interval by interval (a case registered at night
        starts counting at the next working morning). days: the end of the `amount`-th working
        day after `start`'s local day (the day of registration does not count).
        """
        if unit not in UNITS:
            raise CalendarError(f"unknown deadline unit {unit!r}; use one of {', '.join(UNITS)}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if amount < 0:
            raise CalendarError("a deadline cannot be negative")
        if unit == "clock_minutes":  # around the clock: urgent categories, or a catalogue without units
            return start + timedelta(minutes=amount)
        if unit == "days":
            day = start.astimezone(self.tz).date()
            counted = 0
            for _ in range(_MAX_DAYS_SCANNED * max(1, amount)):
                day += timedelta(days=1)
                if self.is_working_day(day):
                    counted += 1
                    if counted >= amount:
                        return self.intervals_on(day, area_codes)[-1][1]
            raise CalendarError("no working day found")
        left = timedelta(minutes=amount * (60 if unit == "hours" else 1))
        for s, e in self._intervals_from(start, area_codes):
            if s + left <= e:
                return s + left
            left -= e - s
        raise AssertionError("unreachable")  # pragma: no cover

    def minutes_between(self, start: datetime, end: datetime, area_codes: tuple[str, ...] = ()) -> int:
        """Working minutes from `start` to `end` (0 when end is not after start), rounded down."""
        if end <= start:
            return 0
        total = timedelta()
        for s, e in self._intervals_from(start, area_codes):
            if s >= end:
                break
            total += min(e, end) - s
        return int(total.total_seconds() // 60)


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float, timezone: str) -> WorkingCalendar:
    return WorkingCalendar.from_file(Path(path), timezone=timezone)


def calendar_for(path: Path | None = None, *, timezone: str = "Asia/Shanghai") -> WorkingCalendar:
    """The calendar from the override file (re-read when the file changes)."""
    path = path or OVERRIDES_FILE
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _cached(str(path), mtime, timezone)


def registration_deadlines(session, ctx, *, category, grid_code: str | None, now: datetime) -> dict[str, datetime]:  # noqa: ANN001
    """Accept and handling deadlines of a case registered `now` (both count from registration),
    plus when the escalation sweep must first look at it."""
    cal = calendar_for(_overrides_path(ctx), timezone=ctx.timezone)
    codes = tuple(a.code for a in area_chain(session, grid_code)) if grid_code else ()
    accept = cal.add(now, category.accept_sla_minutes, category.accept_sla_unit or "clock_minutes", codes)
    handle = cal.add(now, category.handle_sla_minutes, category.handle_sla_unit or "clock_minutes", codes)
    return {"accept_due_at": accept, "handle_due_at": handle, "next_escalation_at": min(accept, handle)}


def _overrides_path(ctx) -> Path:  # noqa: ANN001
    configured = getattr(ctx.settings, "calendar_overrides_path", None)
    return Path(configured) if configured else OVERRIDES_FILE


def calendar_of(ctx) -> WorkingCalendar:  # noqa: ANN001
    """The calendar a service context uses (ONEGRID_CALENDAR_OVERRIDES_PATH or data/calendar_overrides.json)."""
    return calendar_for(_overrides_path(ctx), timezone=ctx.timezone)


def area_codes_of(session, grid_code: str | None) -> tuple[str, ...]:  # noqa: ANN001
    return tuple(a.code for a in area_chain(session, grid_code)) if grid_code else ()
