"""Telegram renderer of the daily digest: the chart as a photo with its caption, then the overdue list.

The chart (bot/digest_chart.py) is written under `data_dir` for the sender to upload; it is removed
again when the digest's transaction rolls back, so no file outlives a digest that was never queued.
"""

from __future__ import annotations

from bot.renderers.work_text import local_time
from services.names import localized
import html
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from bot.digest_chart import chart_png
from bot.renderers.supervision_card import lateness
from models.events.staff import DigestReady, DigestSeries, Overdue
from models.tables import Area, Category, Person
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue

CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _area_name(session: Session, code: str, locale: str) -> str:
    area = session.exec(select(Area).where(Area.code == code)).first()
    return localized(area, locale, code)


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
        category = localized(categories.get(item.category_code), locale, item.category_code)
        label = _("Accept by") if item.deadline == "accept" else _("Handle by")
        names = ", ".join(html.escape(n) for n in item.holder_names)
        if item.held and names:
            holder = _("Held by: {names}").format(names=names)
        elif names:
            holder = _("Offered to: {names} (nobody accepted)").format(names=names)
        else:
            holder = _("Nobody holds it.")
        lines.append(f"\n{i}. <b>{html.escape(item.number)}</b> · {html.escape(category)} · {html.escape(grid)}")
        lines.append(f"{label}: {local_time(item.due_at, ctx.timezone)} · "
                     + _("late by {late}").format(late=lateness(item.late, _)))
        lines.append(holder)
    if overdue.total > len(overdue.cases):
        lines.append("\n" + _("… and {count} more.").format(count=overdue.total - len(overdue.cases)))
    return "\n".join(lines)


def write_chart(session: Session, path: Path, data: bytes) -> None:
    """Write the PNG whole (a temporary file moved into place), and remove it if `session` rolls back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)  # whole or not at all, for the sender
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sa.event.listen(session, "after_rollback", lambda _session: path.unlink(missing_ok=True), once=True)


def digest_ready(session: Session, ctx: ServiceContext, event: DigestReady) -> None:
    """Queue the supervisor's chart photo (its file written now), then the overdue list."""
    person = session.get(Person, event.person_id)
    if person is None or person.telegram_user_id is None:
        return
    now = ctx.clock.now()
    relative = f"digests/{event.day.strftime('%Y%m%d')}/{person.id}.png"
    write_chart(session, Path(ctx.settings.data_dir) / relative, chart_png(event.series))
    enqueue(session, chat_id=person.telegram_user_id, method="sendPhoto", now=now, person_id=person.id,
            payload={"photo_path": relative, "parse_mode": "HTML",
                     "caption": render_caption(session, event.series, locale=person.locale, today=event.day)})
    enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
            payload={"text": render_overdue(session, ctx, event.overdue, area_code=event.series.area_code,
                                            locale=person.locale),
                     "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}})


RENDERERS: EventTable = {DigestReady: [digest_ready]}
