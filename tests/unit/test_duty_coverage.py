"""Duty-roster coverage (services/duty_roster.py `uncovered`) against a minute-by-minute reading of the shifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from models.elders import DutyShift
from services.duty_roster import ALWAYS, parse_weekdays, uncovered

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # Saturday 10:00 in Shanghai


def covers(shift: DutyShift, at: datetime) -> bool:
    """The plain reading: on a listed weekday from start for (end - start) mod 24 h (24 h when equal)."""
    local = at.astimezone(TZ)
    minute = local.hour * 60 + local.minute
    length = (shift.end_minute - shift.start_minute) % 1440 or 1440
    for back in (0, 1):  # a shift that started today, or yesterday and runs past midnight
        weekday = (local.weekday() - back) % 7
        offset = minute + back * 1440 - shift.start_minute
        if weekday in shift.weekdays and 0 <= offset < length:
            return True
    return False


shifts = st.lists(st.builds(
    lambda days, start, end: DutyShift(area_code="A", person_id=1, weekdays=days, start_minute=start * 30,
                                       end_minute=end * 30),
    st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True), st.integers(0, 47), st.integers(0, 47)),
    max_size=4)


@settings(max_examples=150, deadline=None)
@given(shifts=shifts, probe=st.integers(0, 12 * 60 - 1))
def test_a_minute_is_in_a_gap_exactly_when_no_shift_covers_it(shifts, probe) -> None:
    gaps = uncovered(shifts, NOW, timedelta(hours=12), TZ)
    at = NOW + timedelta(minutes=probe)
    in_gap = any((NOW - timedelta(days=8) if start == ALWAYS else start) <= at < end for start, end in gaps)
    assert in_gap == (not any(covers(s, at) for s in shifts))


def test_weekdays_are_read_as_people_write_them() -> None:
    assert parse_weekdays("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_weekdays("sat,sun") == [5, 6]
    assert parse_weekdays("daily") == list(range(7))
    assert parse_weekdays("1-3,7") == [0, 1, 2, 6]
