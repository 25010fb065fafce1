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
- `render_chart` draws the series with Pillow (bars: open and closed per day; line: on-time rate,
  right axis) and returns the PNG bytes with the numbers it drew (`ChartData`). The image holds
  only numbers and dates (Pillow's default font has no CJK glyphs); the caption names the colours.
- `run_due(ctx)` (scheduled once a minute) sends today's digest once the city-local time reaches
  `digest_time`: a `DigestRun` row keyed by the day is inserted first, so a second process or a
  later tick fails on the key and sends nothing; the chart files, the run row and every
  supervisor's notifications commit together (a failed file write commits nothing). Days missed
  while the process was down are not sent afterwards: only today's digest, once.
"""

from __future__ import annotations

import html
import io
import logging
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from models.lifecycle import OPEN, Role, Status
from models.supervision import DigestRun
from models.tables import Area, Case, Category, Person
from models.work import CaseTask, TaskStatus
from onegrid.i18n import gettext_for
from services import dispatch
from services.context import ServiceContext
from services.db import transaction
from bot.renderers.supervision_card import lateness
from services.escalation import ACCEPT_PHASE, holders, subtree_grids
from services.kpi import EXCLUDED
from services.notify import enqueue

log = logging.getLogger("onegrid.digest")

TOP_OVERDUE = 5
CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption
CHART_SIZE = (1000, 560)
# Colours the caption names (tests sample the image for them).
OPEN_COLOUR = (76, 120, 168)  # blue
CLOSED_COLOUR = (84, 162, 75)  # green
RATE_COLOUR = (245, 133, 24)  # orange
_OVERDUE_STATUSES = [s.value for s in OPEN]
_ACCEPT_STATUSES = [s.value for s in ACCEPT_PHASE]


# -- the series ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayPoint:
    day: date  # city-local
    open_at_end: int
    closed: int
    closed_on_time: int

    @property
    def on_time_rate(self) -> float | None:
        return self.closed_on_time / self.closed if self.closed else None


@dataclass(frozen=True)
class DigestSeries:
    area_code: str
    points: tuple[DayPoint, ...]

    @property
    def closed(self) -> int:
        return sum(p.closed for p in self.points)

    @property
    def on_time_rate(self) -> float | None:
        closed = self.closed
        return sum(p.closed_on_time for p in self.points) / closed if closed else None


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
    in_area = Case.grid_code.in_(codes)
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


@dataclass(frozen=True)
class OverdueCase:
    case_id: int
    number: str
    category_code: str
    grid_code: str | None
    deadline: str  # "accept" or "handle": the deadline it is most late on
    due_at: datetime
    late: timedelta
    holder_names: tuple[str, ...]
    held: bool  # True: they accepted it; False: it is only on offer to them


@dataclass(frozen=True)
class Overdue:
    total: int  # overdue open cases in the subtree
    cases: tuple[OverdueCase, ...]  # the `limit` most late, most late first


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


# -- the chart ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartData:
    """What the chart shows, with where it drew it (pixel boxes in the PNG)."""

    days: tuple[date, ...]
    labels: tuple[str, ...]  # the date under each day's bars ("" where skipped for room)
    open: tuple[int, ...]
    closed: tuple[int, ...]
    on_time_pct: tuple[float | None, ...]
    y_max: int
    y_ticks: tuple[int, ...]
    size: tuple[int, int]
    open_bars: tuple[tuple[int, int, int, int], ...]  # (left, top, right, bottom)
    closed_bars: tuple[tuple[int, int, int, int], ...]
    rate_points: tuple[tuple[int, int] | None, ...]


@dataclass(frozen=True)
class Chart:
    png: bytes
    data: ChartData


def nice_axis(top: int, max_ticks: int = 6) -> tuple[int, int]:
    """(axis maximum, tick step) with steps of 1, 2 or 5 × 10ⁿ covering `top` in at most `max_ticks` steps."""
    if top <= 0:
        return 5, 1
    magnitude = 1
    while True:
        for unit in (1, 2, 5):
            step = unit * magnitude
            if math.ceil(top / step) <= max_ticks:
                return math.ceil(top / step) * step, step
        magnitude *= 10


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def render_chart(series: DigestSeries, size: tuple[int, int] = CHART_SIZE) -> Chart:
    """Draw open vs closed bars per day and the on-time rate line; the PNG and the data behind it."""
    width, height = size
    left, right, top, bottom = 72, width - 72, 64, height - 56
    plot_w, plot_h = right - left, bottom - top
    points = series.points
    n = max(1, len(points))
    y_max, step = nice_axis(max([p.open_at_end for p in points] + [p.closed for p in points] + [0]))
    ticks = tuple(range(0, y_max + 1, step))
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    small, normal, title = _font(12), _font(14), _font(18)
    grey, text, axis = (225, 225, 225), (40, 40, 40), (120, 120, 120)

    def y_of(value: float) -> int:
        return round(bottom - value / y_max * plot_h)

    for tick in ticks:  # left axis: counts, with a light grid line
        y = y_of(tick)
        draw.line((left, y, right, y), fill=grey, width=1)
        draw.text((left - 8, y), str(tick), font=normal, fill=text, anchor="rm")
    for pct in (0, 25, 50, 75, 100):  # right axis: on-time rate
        y = round(bottom - pct / 100 * plot_h)
        draw.line((right, y, right + 5, y), fill=RATE_COLOUR, width=2)
        draw.text((right + 9, y), f"{pct}%", font=normal, fill=RATE_COLOUR, anchor="lm")
    draw.line((left, top, left, bottom), fill=axis, width=1)
    draw.line((right, top, right, bottom), fill=RATE_COLOUR, width=1)
    draw.line((left, bottom, right, bottom), fill=axis, width=1)
    if points:
        heading = f"{points[0].day.isoformat()}  -  {points[-1].day.isoformat()}"
        draw.text((left, 24), heading, font=title, fill=text, anchor="lm")

    slot = plot_w / n
    bar_w = max(2, int(slot * 0.34))
    label_w = draw.textlength("00-00", font=normal) + 8
    label_every = max(1, math.ceil(label_w / slot))
    open_bars, closed_bars, rate_points, labels = [], [], [], []
    values: list[tuple[float, int, str]] = []  # numbers above the bars, drawn last so the line never hides them
    for i, p in enumerate(points):
        centre = left + slot * (i + 0.5)
        boxes = []
        for value, colour, x0 in ((p.open_at_end, OPEN_COLOUR, round(centre - bar_w - 1)),
                                  (p.closed, CLOSED_COLOUR, round(centre + 1))):
            box = (x0, y_of(value), x0 + bar_w, bottom)
            if value:
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
            if slot >= 36:  # room for the numbers above the bars
                values.append(((box[0] + box[2]) / 2, box[1] - 3, str(value)))
            boxes.append(box)
        open_bars.append(boxes[0])
        closed_bars.append(boxes[1])
        last = len(points) - 1
        shown = (last - i) % label_every == 0  # always label today
        label = p.day.strftime("%m-%d") if shown else ""
        if label:
            draw.text((centre, bottom + 8), label, font=normal, fill=text, anchor="mt")
        labels.append(label)
        rate = p.on_time_rate
        rate_points.append(None if rate is None else (round(centre), round(bottom - rate * plot_h)))
    for a, b in zip(rate_points, rate_points[1:]):  # the line breaks over days with no closure
        if a is not None and b is not None:
            draw.line((a, b), fill=RATE_COLOUR, width=3)
    radius = max(3, min(5, round(slot / 6)))
    for point in rate_points:
        if point is not None:
            x, y = point
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=RATE_COLOUR, outline=(255, 255, 255),
                         width=1 if radius < 5 else 2)
    for x, y, value in values:
        draw.text((x, y), value, font=small, fill=text, anchor="md", stroke_width=2, stroke_fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    data = ChartData(
        days=tuple(p.day for p in points), labels=tuple(labels), open=tuple(p.open_at_end for p in points),
        closed=tuple(p.closed for p in points),
        on_time_pct=tuple(None if p.on_time_rate is None else round(p.on_time_rate * 100, 1) for p in points),
        y_max=y_max, y_ticks=ticks, size=size, open_bars=tuple(open_bars), closed_bars=tuple(closed_bars),
        rate_points=tuple(rate_points))
    return Chart(out.getvalue(), data)


# -- the messages -------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _area_name(session: Session, code: str, locale: str) -> str:
    area = session.exec(select(Area).where(Area.code == code)).first()
    return dispatch.localized(area, locale, code)


def render_caption(session: Session, series: DigestSeries, *, locale: str, today: date) -> str:
    """The photo's caption in `locale`: what the colours mean and the figures in words (≤ 1024 characters)."""
    _ = gettext_for(locale)
    last = series.points[-1]
    lines = [
        "<b>" + _("📈 Daily digest · {area} · {date}").format(
            area=html.escape(_area_name(session, series.area_code, locale)), date=today.isoformat()) + "</b>",
        _("Blue bars: cases open at the end of each day. Green bars: cases closed that day. "
          "Orange line: share of that day's closures made on time (right axis)."),
        _("Today: {open} open, {closed} closed.").format(open=last.open_at_end, closed=last.closed),
        _("Last {days} days:").format(days=len(series.points)),
        _("Closed: {n}").format(n=series.closed),
        _("On-time closure rate: {rate}").format(rate=_pct(series.on_time_rate)),
    ]
    caption = "\n".join(lines)
    while len(caption) > CAPTION_LIMIT and len(lines) > 1:  # a very long area name: drop the least needed lines
        lines.pop()
        caption = "\n".join(lines)
    return caption[:CAPTION_LIMIT]


def render_overdue(session: Session, ctx: ServiceContext, overdue: Overdue, *, area_code: str, locale: str) -> str:
    """The list of the most overdue cases in `locale` (or that nothing is overdue)."""
    _ = gettext_for(locale)
    area = html.escape(_area_name(session, area_code, locale))
    if not overdue.cases:
        return _("✅ Nothing overdue in {area}.").format(area=area)
    lines = [_("⏰ Overdue cases in {area}: {count}. Most late first:").format(area=area, count=overdue.total)]
    categories = {c.code: c for c in session.exec(select(Category).where(
        Category.code.in_({o.category_code for o in overdue.cases}))).all()}
    for i, item in enumerate(overdue.cases, start=1):
        grid = _area_name(session, item.grid_code, locale) if item.grid_code else "—"
        category = dispatch.localized(categories.get(item.category_code), locale, item.category_code)
        label = _("Accept by") if item.deadline == "accept" else _("Handle by")
        names = ", ".join(html.escape(n) for n in item.holder_names)
        if item.held and names:
            holder = _("Held by: {names}").format(names=names)
        elif names:
            holder = _("Offered to: {names} (nobody accepted)").format(names=names)
        else:
            holder = _("Nobody holds it.")
        lines.append(f"\n{i}. <b>{html.escape(item.number)}</b> · {html.escape(category)} · {html.escape(grid)}")
        lines.append(f"{label}: {dispatch.local_time(item.due_at, ctx.timezone)} · "
                     + _("late by {late}").format(late=lateness(item.late, _)))
        lines.append(holder)
    if overdue.total > len(overdue.cases):
        lines.append("\n" + _("… and {count} more.").format(count=overdue.total - len(overdue.cases)))
    return "\n".join(lines)


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


def _write(path: Path, data: bytes, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    written.append(tmp)
    tmp.replace(path)  # whole or not at all, for the sender
    written.append(path)


def run_due(ctx: ServiceContext) -> int:
    """Send today's digest if its time has come and it was not sent yet; returns recipients."""
    now = ctx.clock.now()
    today = due_day(now, ctx.timezone, ctx.settings.digest_time)
    if today is None:
        return 0
    key = today.strftime("%Y%m%d")
    with ctx.sessions() as session:
        if session.get(DigestRun, key) is not None:
            return 0
    written: list[Path] = []
    try:
        with transaction(ctx.sessions) as session:
            run = DigestRun(day=key, sent_at=now, recipients=0)
            session.add(run)
            # The claim: a concurrent run waits here for ours to commit, then fails on the day's key.
            session.flush()
            run.recipients = _queue_digests(session, ctx, today, key, now, written)
            session.add(run)
            recipients = run.recipients
    except IntegrityError:
        _remove(written)
        log.info("digest of %s already sent by another run", key)
        return 0
    except BaseException:
        _remove(written)
        raise
    if recipients:
        ctx.on_notifications()
    return recipients


def _queue_digests(session: Session, ctx: ServiceContext, today: date, key: str, now: datetime,
                   written: list[Path]) -> int:
    charts: dict[str, tuple[DigestSeries, Chart, Overdue]] = {}
    count = 0
    for person in digest_supervisors(session):
        area_code = person.area_code
        if area_code not in charts:
            series = digest_series(session, area_code=area_code, today=today, days=ctx.settings.digest_days,
                                   timezone=ctx.timezone)
            charts[area_code] = (series, render_chart(series), top_overdue(session, area_code=area_code, now=now))
        series, chart, overdue = charts[area_code]
        relative = f"digests/{key}/{person.id}.png"
        _write(Path(ctx.settings.data_dir) / relative, chart.png, written)
        enqueue(session, chat_id=person.telegram_user_id, method="sendPhoto", now=now, person_id=person.id,
                payload={"photo_path": relative, "parse_mode": "HTML",
                         "caption": render_caption(session, series, locale=person.locale, today=today)})
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                payload={"text": render_overdue(session, ctx, overdue, area_code=area_code, locale=person.locale),
                         "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}})
        count += 1
    return count


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove %s", path)
