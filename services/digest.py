"""The daily digest for supervisors: a chart of their area and the five most overdue cases.

What callers may rely on:
- `digest_series` gives, for an area's subtree and the `days` city-local days ending `today`, per
  day: cases open at the end of the day, cases closed that day, and how many of those closures were
  on time (no later than the handling deadline; None rate when nothing closed). Cancelled and
  merged cases never count (as in services/kpi.py). "Open" means registered and not closed by the
  end of the day; a shelved case is still open (unresolved), and a reopened case counts as open
  from its creation (the store keeps only its latest closure).
- `top_overdue` lists the open (not shelved) cases of the subtree past a deadline, most late
  first: the handling deadline in any open status, the accept deadline while nobody accepted it.
- `run_due(ctx)` (scheduled once a minute) publishes today's digest (`DigestReady`, one per
  supervisor, with the series and the overdue list) once the city-local time reaches
  `digest_time`: a `DigestRun` row keyed by the day is inserted first, so a second process or a
  later tick fails on the key and publishes nothing; the run row and whatever the channel queues
  for the digest (bot/renderers/staff_digest.py: a chart file and two messages) commit together,
  and an error there (a failed file write) commits nothing. Days missed while the process was down
  are not sent afterwards: only today's digest, once.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from models.events.staff import DayPoint, DigestReady, DigestSeries, Overdue, OverdueCase
from models.lifecycle import OPEN, Role, Status
from models.supervision import DigestRun
from models.tables import Case, Person
from models.work import CaseTask, TaskStatus
from services.context import ServiceContext
from services.db import transaction
from services.escalation import ACCEPT_PHASE, holders, subtree_grids
from services.kpi import EXCLUDED

log = logging.getLogger("onegrid.digest")

TOP_OVERDUE = 5
_OVERDUE_STATUSES = [s.value for s in OPEN]
_ACCEPT_STATUSES = [s.value for s in ACCEPT_PHASE]

__all__ = ["DayPoint", "DigestSeries", "Overdue", "OverdueCase", "day_bounds", "digest_series", "digest_supervisors",
           "due_day", "fold_days", "run_due", "top_overdue"]


# -- the series ---------------------------------------------------------------------------------------


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[local midnight of `day`, local midnight of the next day) as UTC instants."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def fold_days(days: Sequence[date], starts: Sequence[datetime], end: datetime, *, open_before: int,
              created: Sequence[datetime], closures: Sequence[tuple[datetime, bool]]) -> tuple[DayPoint, ...]:
    """The per-day points from raw facts (pure): `open_before` cases open when the window starts,
    the creation times of cases created in the window, and (closure time, on time) of closures in it.
    `starts` are the days' first instants; `end` is the end of the last day."""
    n = len(days)
    created_per_day, closed_per_day, on_time_per_day = [0] * n, [0] * n, [0] * n

    def index(at: datetime) -> int | None:
        i = bisect_right(starts, at) - 1
        return i if 0 <= i < n and at < end else None

    for at in created:
        if (i := index(at)) is not None:
            created_per_day[i] += 1
    for at, on_time in closures:
        if (i := index(at)) is not None:
            closed_per_day[i] += 1
            on_time_per_day[i] += on_time
    points, open_now = [], open_before
    for i, day in enumerate(days):
        open_now += created_per_day[i] - closed_per_day[i]
        points.append(DayPoint(day, open_now, closed_per_day[i], on_time_per_day[i]))
    return tuple(points)


def digest_series(session: Session, *, area_code: str, today: date, days: int, timezone: str) -> DigestSeries:
    """The chart's series for `area_code`'s subtree over the `days` city-local days ending `today` (reads only)."""
    day_list = [today - timedelta(days=days - 1 - i) for i in range(days)]
    starts = [day_bounds(d, timezone)[0] for d in day_list]
    window_start, window_end = starts[0], day_bounds(today, timezone)[1]
    codes = subtree_grids(session, area_code)
    in_area = Case.grid_code.in_(codes) & Case.drill.is_(False)  # the chart is a KPI: drills never count
    alive = Case.status.not_in([s.value for s in EXCLUDED])
    open_before = session.exec(select(func.count()).select_from(Case).where(
        in_area, alive, Case.created_at < window_start,
        sa.or_(Case.status != Status.CLOSED, Case.closed_at.is_(None), Case.closed_at >= window_start))).one()
    created = session.exec(select(Case.created_at).where(
        in_area, alive, Case.created_at >= window_start, Case.created_at < window_end)).all()
    closures = [(closed_at, due is None or closed_at <= due) for closed_at, due in session.exec(
        select(Case.closed_at, Case.handle_due_at).where(
            in_area, Case.status == Status.CLOSED, Case.closed_at >= window_start, Case.closed_at < window_end)).all()]
    return DigestSeries(area_code, fold_days(day_list, starts, window_end, open_before=open_before,
                                             created=created, closures=closures))


# -- the overdue list ---------------------------------------------------------------------------------


def _lateness(case: Case, now: datetime) -> tuple[timedelta, str, datetime] | None:
    options = []
    if case.handle_due_at is not None and case.handle_due_at < now:
        options.append((now - case.handle_due_at, "handle", case.handle_due_at))
    if Status(case.status) in ACCEPT_PHASE and case.accept_due_at is not None and case.accept_due_at < now:
        options.append((now - case.accept_due_at, "accept", case.accept_due_at))
    return max(options, key=lambda o: o[0]) if options else None


def top_overdue(session: Session, *, area_code: str, now: datetime, limit: int = TOP_OVERDUE) -> Overdue:
    """The open cases of the subtree past a deadline, most late first (see the module docstring)."""
    in_area = Case.grid_code.in_(subtree_grids(session, area_code))
    is_open = Case.status.in_(_OVERDUE_STATUSES)
    handle_late = sa.and_(Case.handle_due_at.is_not(None), Case.handle_due_at < now)
    accept_late = sa.and_(Case.status.in_(_ACCEPT_STATUSES), Case.accept_due_at.is_not(None),
                          Case.accept_due_at < now)
    total = session.exec(select(func.count()).select_from(Case).where(
        in_area, is_open, sa.or_(handle_late, accept_late))).one()
    # The most late on either deadline are among the earliest due on each, so two short queries suffice.
    found: dict[int, Case] = {}
    for late, due in ((handle_late, Case.handle_due_at), (accept_late, Case.accept_due_at)):
        for case in session.exec(select(Case).where(in_area, is_open, late).order_by(due, Case.id).limit(limit)):
            found[case.id] = case
    ranked = sorted(((_lateness(c, now), c) for c in found.values()), key=lambda lc: (-lc[0][0], lc[1].number))
    out = []
    for (late, deadline, due_at), case in ranked[:limit]:
        people = holders(session, case)
        held = session.exec(select(CaseTask.id).where(CaseTask.case_id == case.id,
                                                      CaseTask.status == TaskStatus.ACCEPTED)).first() is not None
        out.append(OverdueCase(case.id, case.number, case.category_code, case.grid_code, deadline, due_at, late,
                               tuple(p.display_name for p in people), held and bool(people)))
    return Overdue(total, tuple(out))


# -- the daily run ------------------------------------------------------------------------------------


def due_day(now: datetime, timezone: str, digest_time: str) -> date | None:
    """Today's city-local date once `digest_time` (HH:MM, local) has come, else None."""
    local = now.astimezone(ZoneInfo(timezone))
    hour, minute = (int(part) for part in digest_time.split(":"))
    return local.date() if (local.hour, local.minute) >= (hour, minute) else None


def digest_supervisors(session: Session) -> list[Person]:
    """Who gets the digest: active supervisors with a chat and an area, not deleted."""
    people = session.exec(select(Person).where(
        Person.active.is_(True), Person.deleted_at.is_(None), Person.telegram_user_id.is_not(None),
        Person.area_code.is_not(None)).order_by(Person.id)).all()
    return [p for p in people if p.has_role(Role.SUPERVISOR)]


def run_due(ctx: ServiceContext) -> int:
    """Publish today's digest if its time has come and it was not sent yet; returns recipients."""
    now = ctx.clock.now()
    today = due_day(now, ctx.timezone, ctx.settings.digest_time)
    if today is None:
        return 0
    key = today.strftime("%Y%m%d")
    with ctx.sessions() as session:
        if session.get(DigestRun, key) is not None:
            return 0
    try:
        with transaction(ctx.sessions) as session:
            run = DigestRun(day=key, sent_at=now, recipients=0)
            session.add(run)
            # The claim: a concurrent run waits here for ours to commit, then fails on the day's key.
            session.flush()
            run.recipients = _publish_digests(session, ctx, today, now)
            session.add(run)
            recipients = run.recipients
    except IntegrityError:
        log.info("digest of %s already sent by another run", key)
        return 0
    if recipients:
        ctx.on_notifications()
    return recipients


def _publish_digests(session: Session, ctx: ServiceContext, today: date, now: datetime) -> int:
    computed: dict[str, tuple[DigestSeries, Overdue]] = {}
    count = 0
    for person in digest_supervisors(session):
        area_code = person.area_code
        if area_code not in computed:
            computed[area_code] = (
                digest_series(session, area_code=area_code, today=today, days=ctx.settings.digest_days,
                              timezone=ctx.timezone),
                top_overdue(session, area_code=area_code, now=now))
        series, overdue = computed[area_code]
        ctx.publish(session, DigestReady(person_id=person.id, day=today, series=series, overdue=overdue))
        count += 1
    return count
