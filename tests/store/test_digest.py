"""The daily digest on a real store (SQLite and PostgreSQL): the series on a hand-built data set,
the chart, the top overdue cases, and the once-a-day run driven by the fake clock."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlmodel import select

from models.lifecycle import Status
from models.supervision import DigestRun
from models.tables import Case, CaseSource, Notification, Person
from models.work import CaseTask, TaskStatus
from bot import digest_chart
from bot.renderers.staff_digest import render_overdue
from services import digest
from services.db import make_engine, make_session_factory, transaction
from tests.worker_support import GRID, STREET, add_person, add_supervisor, add_worker, make_ctx, queued

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 11, 21)
OTHER_STREET, OTHER_GRID = "SH-HP-02", "SH-HP-02-001"
EN_SUP, ZH_SUP, NO_AREA_SUP, GONE_SUP, WORKER = 801, 802, 803, 804, 805


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A November 2026 time in Shanghai, as the UTC instant the store keeps."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


_numbers = iter(range(1, 10_000))


def add_case(s, grid: str, status: Status, created: datetime, *, handle_due: datetime | None = None,
             accept_due: datetime | None = None, closed: datetime | None = None) -> Case:
    case = Case(number=f"D-{next(_numbers):04d}", source=CaseSource.RESIDENT, category_code="exposed_garbage",
                lat=31.2, lon=121.4, grid_code=grid, status=status, created_at=created,
                updated_at=closed or created, handle_due_at=handle_due, accept_due_at=accept_due, closed_at=closed)
    s.add(case)
    s.flush()
    return case


@pytest.fixture
def ctx(db, clock, tmp_path):
    return make_ctx(db.sessions, clock, tmp_path / "data", digest_days=4, digest_time="18:00")


@pytest.fixture
def history(db, ctx) -> dict[str, Case]:
    """Four city days, 18–21 November (today is the 21st), in street SH-HP-01 unless said otherwise.

    Hand-computed (open at the end of the day, closed that day, closed on time):
      18th: open 3 at the start (A, B, G) + C created − B, G closed (both on time)  → (2, 2, 2)
      19th: + D created − C (after its deadline), D (on time) closed               → (1, 2, 1)
      20th: + F created at 23:30 local; E is cancelled and never counts           → (2, 0, 0)
      21st: + H created and closed on time                                         → (2, 1, 1)
    """
    with transaction(db.sessions) as s:
        cases = {
            # Open since before the window, handling deadline long passed.
            "A": add_case(s, GRID, Status.DISPATCHED, local(15, 9), handle_due=local(16, 9)),
            "B": add_case(s, GRID, Status.CLOSED, local(16, 10), handle_due=local(19, 10), closed=local(18, 11)),
            "C": add_case(s, GRID, Status.CLOSED, local(18, 9), handle_due=local(19, 12), closed=local(19, 15)),
            "D": add_case(s, GRID, Status.CLOSED, local(19, 8), handle_due=local(20, 8), closed=local(19, 20)),
            "E": add_case(s, GRID, Status.CANCELLED, local(20, 9), handle_due=local(20, 10)),
            # 23:30 on the 20th in Shanghai is 15:30 UTC: a local day, not a UTC one.
            "F": add_case(s, GRID, Status.IN_PROGRESS, local(20, 23, 30), handle_due=local(23, 18)),
            # Created at 23:00 on the 17th, closed at 00:30 on the 18th local (16:30 UTC on the 17th).
            "G": add_case(s, GRID, Status.CLOSED, local(17, 23), handle_due=local(18, 8), closed=local(18, 0, 30)),
            "H": add_case(s, GRID, Status.CLOSED, local(21, 8), handle_due=local(21, 17), closed=local(21, 9)),
            # Closed before the window: not open at its start.
            "I": add_case(s, GRID, Status.CLOSED, local(10, 9), handle_due=local(11, 9), closed=local(12, 9)),
            # Another street: only its own supervisors (and the city) see it; overdue.
            "X": add_case(s, OTHER_GRID, Status.DISPATCHED, local(19, 9), handle_due=local(20, 9)),
        }
    return cases


def series(db, area: str = STREET) -> digest.DigestSeries:
    with db.sessions() as s:
        return digest.digest_series(s, area_code=area, today=TODAY, days=4, timezone="Asia/Shanghai")


def test_series_matches_hand_computed_values(db, history) -> None:
    points = series(db).points
    assert [p.day for p in points] == [date(2026, 11, d) for d in (18, 19, 20, 21)]
    assert [(p.open_at_end, p.closed, p.closed_on_time) for p in points] == [(2, 2, 2), (1, 2, 1), (2, 0, 0),
                                                                             (2, 1, 1)]
    assert [p.on_time_rate for p in points] == [1.0, 0.5, None, 1.0]
    assert series(db).on_time_rate == 0.8  # 4 of 5 closures in the window
    # The district sees the other street's open case too; its own street's supervisor does not.
    district = series(db, "SH-HP").points
    assert [p.open_at_end for p in district] == [2, 2, 3, 3]
    assert [p.open_at_end for p in series(db, OTHER_STREET).points] == [0, 1, 1, 1]


def test_chart_is_a_png_of_the_series(db, history) -> None:
    chart = digest_chart.render_chart(series(db))
    image = Image.open(io.BytesIO(chart.png))
    assert image.format == "PNG" and image.size == (1000, 560)
    data = chart.data
    assert data.open == (2, 1, 2, 2) and data.closed == (2, 2, 0, 1)
    assert data.on_time_pct == (100.0, 50.0, None, 100.0)
    assert data.labels == ("11-18", "11-19", "11-20", "11-21")
    assert data.y_max >= 2 and data.y_ticks[0] == 0
    image = image.convert("RGB")

    def centre(box: tuple[int, int, int, int]) -> tuple[int, int]:
        return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2

    # What a reader sees: a blue bar for each day's open cases, a green one where cases closed, none
    # on the 20th, and the on-time line's points at 100 % and 50 % height, absent on the 20th.
    assert all(image.getpixel(centre(box)) == digest_chart.OPEN_COLOUR for box in data.open_bars)
    assert image.getpixel(centre(data.closed_bars[0])) == digest_chart.CLOSED_COLOUR
    x0, _top, x1, bottom = data.closed_bars[2]
    assert all(image.getpixel((x, bottom - 3)) != digest_chart.CLOSED_COLOUR for x in range(x0, x1))
    full, half = data.rate_points[0], data.rate_points[1]
    assert image.getpixel(full) == digest_chart.RATE_COLOUR and image.getpixel(half) == digest_chart.RATE_COLOUR
    assert data.rate_points[2] is None
    assert half[1] - full[1] == pytest.approx((data.open_bars[0][3] - full[1]) / 2, abs=1)


def test_top_five_overdue_most_late_first(db, ctx, clock) -> None:
    now = local(21, 18)
    worker = add_worker(db.sessions, now, WORKER, name="Wang Wei")
    with transaction(db.sessions) as s:
        late = [add_case(s, GRID, Status.IN_PROGRESS, local(1, 9), handle_due=now - timedelta(hours=h))
                for h in (3, 50, 7, 1, 26, 90)]
        # Not accepted, 5 days past its accept deadline (its handling deadline is still ahead).
        unaccepted = add_case(s, GRID, Status.DISPATCHED, local(1, 9), accept_due=now - timedelta(days=5),
                              handle_due=now + timedelta(days=1))
        # Not overdue: accepted (the accept deadline no longer matters), shelved (clock stopped), closed.
        add_case(s, GRID, Status.IN_PROGRESS, local(1, 9), accept_due=now - timedelta(days=9),
                 handle_due=now + timedelta(hours=2))
        add_case(s, GRID, Status.SHELVED, local(1, 9), handle_due=now - timedelta(days=9))
        add_case(s, GRID, Status.CLOSED, local(1, 9), handle_due=now - timedelta(days=9), closed=now)
        s.add(CaseTask(case_id=late[5].id, department_code="greening_appearance", status=TaskStatus.ACCEPTED,
                       assignee_id=worker, created_at=now, updated_at=now, accepted_at=now))
    with db.sessions() as s:
        overdue = digest.top_overdue(s, area_code=STREET, now=now)
        text = render_overdue(s, ctx, overdue, area_code=STREET, locale="en")
    assert overdue.total == 7
    assert [o.number for o in overdue.cases] == [unaccepted.number] + [late[i].number for i in (5, 1, 4, 2)]
    assert [o.deadline for o in overdue.cases] == ["accept", "handle", "handle", "handle", "handle"]
    assert overdue.cases[1].late == timedelta(hours=90) and overdue.cases[1].holder_names == ("Wang Wei",)
    # The message: the five in that order, how late, who holds them, and how many more there are.
    positions = [text.index(o.number) for o in overdue.cases]
    assert positions == sorted(positions)
    assert late[3].number not in text and late[0].number not in text
    assert "Overdue cases in East Nanjing Road: 7" in text
    assert "late by 5 d 0 h" in text and "late by 3 d 18 h" in text and "Held by: Wang Wei" in text
    assert "Nobody holds it." in text and "… and 2 more." in text


def test_nothing_overdue(db, ctx) -> None:
    with db.sessions() as s:
        overdue = digest.top_overdue(s, area_code=STREET, now=local(21, 18))
        assert overdue.total == 0
        assert render_overdue(s, ctx, overdue, area_code=STREET, locale="en") == \
            "✅ Nothing overdue in East Nanjing Road."


@pytest.fixture
def supervisors(db, ctx, clock) -> None:
    now = clock.now()
    add_supervisor(db.sessions, now, EN_SUP, area_code=STREET, locale="en")
    add_supervisor(db.sessions, now, ZH_SUP, area_code=OTHER_STREET, locale="zh_CN")
    add_supervisor(db.sessions, now, NO_AREA_SUP, area_code=None)
    add_supervisor(db.sessions, now, GONE_SUP, area_code=STREET, active=False)
    add_worker(db.sessions, now, WORKER)


def digests(db, chat_id: int) -> tuple[list[Notification], list[Notification]]:
    return queued(db.sessions, chat_id, "sendPhoto"), queued(db.sessions, chat_id, "sendMessage")


def test_run_due_sends_each_supervisor_one_digest_a_day(db, ctx, clock, history, supervisors) -> None:
    woken = []
    ctx.on_notifications = lambda: woken.append(1)
    clock.set(local(21, 17, 59))
    assert digest.run_due(ctx) == 0
    assert digests(db, EN_SUP) == ([], []) and woken == []
    clock.set(local(21, 18, 0))
    assert digest.run_due(ctx) == 2
    assert woken == [1]
    (en_photo,), (en_list,) = digests(db, EN_SUP)
    (zh_photo,), (zh_list,) = digests(db, ZH_SUP)
    for chat_id in (NO_AREA_SUP, GONE_SUP, WORKER):
        assert digests(db, chat_id) == ([], [])
    # The English supervisor: the chart of their street, explained in English, and their overdue case.
    caption = en_photo.payload["caption"]
    assert "East Nanjing Road" in caption and "Blue bars" in caption and len(caption) <= 1024
    assert "Today: 2 open, 1 closed." in caption and "On-time closure rate: 80.0%" in caption
    assert en_photo.payload["parse_mode"] == "HTML"
    png = ctx.settings.data_dir / en_photo.payload["photo_path"]
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1000, 560)
    assert history["A"].number in en_list.payload["text"] and history["X"].number not in en_list.payload["text"]
    # The Chinese supervisor of the other street: Chinese names and labels, only their street's case.
    assert "外滩街道" in zh_photo.payload["caption"] and "按期结案率" in zh_photo.payload["caption"]
    assert history["X"].number in zh_list.payload["text"] and history["A"].number not in zh_list.payload["text"]
    assert "外滩街道第1网格" in zh_list.payload["text"] and "已超时" in zh_list.payload["text"]
    # Ordered photo first, then the list (the queue keeps a chat's order).
    assert en_photo.id < en_list.id
    # The same day again, from this process or a second one: nothing more.
    assert digest.run_due(ctx) == 0
    clock.set(local(21, 23, 59))
    engine = make_engine(db.url)
    try:
        second = replace(ctx, sessions=make_session_factory(engine))
        assert digest.run_due(second) == 0
    finally:
        engine.dispose()
    assert [len(x) for x in digests(db, EN_SUP) + digests(db, ZH_SUP)] == [1, 1, 1, 1]
    # The next day: before the time nothing, then again one each.
    clock.set(local(22, 9))
    assert digest.run_due(ctx) == 0
    clock.set(local(22, 18, 1))
    assert digest.run_due(ctx) == 2
    assert [len(x) for x in digests(db, EN_SUP) + digests(db, ZH_SUP)] == [2, 2, 2, 2]
    with db.sessions() as s:
        runs = s.exec(select(DigestRun).order_by(DigestRun.day)).all()
    assert [(r.day, r.recipients) for r in runs] == [("20261121", 2), ("20261122", 2)]


def test_after_downtime_only_todays_digest_goes_once(db, ctx, clock, history, supervisors) -> None:
    clock.set(local(21, 18, 0))
    assert digest.run_due(ctx) == 2
    clock.set(local(25, 20, 0))  # down from the 21st to the 25th
    assert digest.run_due(ctx) == 2
    assert digest.run_due(ctx) == 0
    with db.sessions() as s:
        assert s.exec(select(DigestRun.day).order_by(DigestRun.day)).all() == ["20261121", "20261125"]
    photos, _lists = digests(db, EN_SUP)
    assert [p.payload["photo_path"].split("/")[1] for p in photos] == ["20261121", "20261125"]


def test_two_processes_at_once_send_one_digest(db, ctx, clock, history, supervisors) -> None:
    clock.set(local(21, 18, 0))
    engines = [make_engine(db.url) for _ in range(2)]
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def process(engine) -> None:  # noqa: ANN001
        own = replace(ctx, sessions=make_session_factory(engine))  # a second process on the same store
        start.wait()
        try:
            results.append(digest.run_due(own))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=process, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for e in engines:
            e.dispose()
    assert errors == [] and sorted(results) == [0, 2]
    assert [len(x) for x in digests(db, EN_SUP) + digests(db, ZH_SUP)] == [1, 1, 1, 1]


def test_a_failed_chart_write_commits_nothing(db, ctx, clock, history, supervisors) -> None:
    clock.set(local(21, 18, 0))
    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    blocker = ctx.settings.data_dir / "digests"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        digest.run_due(ctx)
    with db.sessions() as s:
        assert s.exec(select(DigestRun)).all() == []
        assert s.exec(select(Notification).where(Notification.method == "sendPhoto")).all() == []
    blocker.unlink()  # the next tick succeeds
    assert digest.run_due(ctx) == 2


def test_a_supervisor_who_left_gets_nothing(db, ctx, clock, supervisors) -> None:
    with transaction(db.sessions) as s:
        person = s.exec(select(Person).where(Person.telegram_user_id == ZH_SUP)).one()
        person.deleted_at = clock.now()
        s.add(person)
    clock.set(local(21, 18, 0))
    assert digest.run_due(ctx) == 1
    assert digests(db, ZH_SUP) == ([], [])
    (photo,), (listing,) = digests(db, EN_SUP)
    assert listing.payload["text"] == "✅ Nothing overdue in East Nanjing Road."
    assert "Today: 0 open, 0 closed." in photo.payload["caption"]
    assert "On-time closure rate: —" in photo.payload["caption"]


def test_people_without_supervisor_role_are_not_recipients(db, clock) -> None:
    add_person(db.sessions, clock.now(), telegram_user_id=9990, roles=["dispatcher"], area_code=STREET)
    with db.sessions() as s:
        assert digest.digest_supervisors(s) == []
