"""The working calendar: hours, weekends, China's public holidays and make-up working days (调休)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.working_time import CalendarError, WorkingCalendar

SH = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


CAL = WorkingCalendar()


def test_national_day_holiday_is_skipped_and_the_make_up_saturday_counts() -> None:
    # 2026: 1-7 Oct off; Sat 10 Oct is a make-up working day. Wed 30 Sep 17:00 + 60 working minutes:
    # 30 minutes that day, then nothing until Thu 8 Oct 08:30.
    assert CAL.add(local(2026, 9, 30, 17, 0), 60, "minutes") == local(2026, 10, 8, 9, 0)
    assert not CAL.is_working_day(date(2026, 10, 5))
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, 调休
    # Fri 9 Oct 17:00 + 60 working minutes lands on the make-up Saturday.
    assert CAL.add(local(2026, 10, 9, 17, 0), 60, "minutes") == local(2026, 10, 10, 9, 0)


def test_make_up_sunday_before_national_day() -> None:
    assert CAL.is_working_day(date(2026, 9, 20))  # Sunday, 调休
    assert CAL.add(local(2026, 9, 19, 10, 0), 30, "minutes") == local(2026, 9, 20, 9, 0)


def test_lunch_break_and_units() -> None:
    assert CAL.add(local(2026, 11, 23, 11, 30), 60, "minutes") == local(2026, 11, 23, 13, 30)
    assert CAL.add(local(2026, 11, 23, 8, 30), 2, "hours") == local(2026, 11, 23, 10, 30)
    # Days: the end of the N-th working day after the day of registration (Fri → Mon, Tue).
    assert CAL.add(local(2026, 11, 20, 16, 0), 2, "days") == local(2026, 11, 24, 17, 30)
    # Around the clock, for urgent categories (and the catalogue's default): a Saturday night counts.
    assert CAL.add(local(2026, 11, 21, 23, 0), 90, "clock_minutes") == local(2026, 11, 22, 0, 30)
    with pytest.raises(CalendarError):
        CAL.add(local(2026, 11, 23, 9, 0), 1, "weeks")


def test_override_file_area_hours_and_days(tmp_path) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"area_hours": {"SH-HP-01": [["09:00", "18:00"]]}, "days_off": ["2026-11-23"],
                                "working_days": ["2026-11-22"]}))
    cal = WorkingCalendar.from_file(path)
    assert cal.is_working_day(date(2026, 11, 22)) and not cal.is_working_day(date(2026, 11, 23))
    # The grid has no hours of its own; its street's win over the default.
    assert cal.add(local(2026, 11, 22, 8, 0), 60, "minutes", ("SH-HP-01-001", "SH-HP-01", "SH-HP", "SH")) \
        == local(2026, 11, 22, 10, 0)
    path.write_text(json.dumps({"default_hours": [["12:00", "09:00"]]}))
    with pytest.raises(CalendarError):
        WorkingCalendar.from_file(path)


@settings(max_examples=60, deadline=None)
@given(start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)),
       minutes=st.integers(min_value=0, max_value=5000))
def test_minutes_between_inverts_add(start: datetime, minutes: int) -> None:
    start = start.replace(tzinfo=UTC, microsecond=0, second=0)
    due = CAL.add(start, minutes, "minutes")
    assert CAL.minutes_between(start, due) == minutes
    assert due >= start
    if minutes:
        assert CAL.is_working_time(due - timedelta(seconds=1))
