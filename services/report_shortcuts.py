"""The one-tap categories on the first screen of a report: the resident's own recent ones, then the
categories reported most often where the resident reports.

A resident who finds their problem among them skips the kind step (one tap fewer). Read-only.

What callers may rely on:
- `recent` are the resident's own latest categories, newest first; `frequent` never repeats them.
- `frequent` ranks the categories of cases opened in the last `FREQUENT_WINDOW` in the grid of the
  resident's latest report (their neighbourhood, as far as we know it before they share a location),
  then tops up from the whole store; ties go to the catalogue's order. Only active categories appear.
- Together they are at most `SHORTCUTS`. The counts are kept per store for `FREQUENT_TTL` of the
  service clock, so a burst of /report reads the cases table once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlmodel import Session, select

from models.resident import ReportReceipt
from models.tables import Case, Category
from services.context import ServiceContext
from services.report_choices import CategoryChoice, active_categories, recent_categories

SHORTCUTS = 4  # more would push the kinds below the fold on a phone
RECENT_MAX = 2  # leave room for what the neighbours report
FREQUENT_WINDOW = timedelta(days=90)
FREQUENT_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class Shortcuts:
    recent: list[CategoryChoice]
    frequent: list[CategoryChoice]


def shortcut_categories(ctx: ServiceContext, *, person_id: int | None) -> Shortcuts:
    """The first screen's one-tap categories for this resident (see the module docstring)."""
    recent = recent_categories(ctx, person_id=person_id, limit=RECENT_MAX) if person_id is not None else []
    by_code = {c.code: c for c in active_categories(ctx)}
    shown = {c.code for c in recent}
    frequent: list[CategoryChoice] = []
    grid = _home_grid(ctx, person_id) if person_id is not None else None
    for scope in ([grid] if grid else []) + [None]:
        for code in _ranked(ctx, scope, order=list(by_code)):
            if len(recent) + len(frequent) >= SHORTCUTS:
                return Shortcuts(recent, frequent)
            if code in by_code and code not in shown:
                shown.add(code)
                frequent.append(by_code[code])
    return Shortcuts(recent, frequent)


def _home_grid(ctx: ServiceContext, person_id: int) -> str | None:
    """The grid of the resident's latest report (a new case or one they joined), if any."""
    with ctx.sessions() as session:
        return session.exec(
            select(Case.grid_code).join(ReportReceipt, ReportReceipt.case_id == Case.id)
            .where(ReportReceipt.person_id == person_id, Case.grid_code.is_not(None))
            .order_by(ReportReceipt.created_at.desc(), ReportReceipt.id.desc()).limit(1)
        ).first()


# -- counts, cached per store ----------------------------------------------------------------------

_COUNTS: WeakKeyDictionary[sa.Engine, dict[str | None, tuple[datetime, dict[str, int]]]] = WeakKeyDictionary()
_LOCK = threading.Lock()


def _ranked(ctx: ServiceContext, grid_code: str | None, *, order: list[str]) -> list[str]:
    """Category codes by how many cases they had in the window (in `grid_code`, or anywhere), most first."""
    counts = _counts(ctx, grid_code)
    position = {code: i for i, code in enumerate(order)}
    return sorted(counts, key=lambda code: (-counts[code], position.get(code, len(order)), code))


def _counts(ctx: ServiceContext, grid_code: str | None) -> dict[str, int]:
    now = ctx.clock.now()
    with ctx.sessions() as session:
        engine = _engine(session)
        with _LOCK:
            held = _COUNTS.setdefault(engine, {}).get(grid_code)
        if held is not None and now - held[0] < FREQUENT_TTL and held[0] <= now:
            return held[1]
        query = (select(Case.category_code, sa.func.count()).where(Case.created_at >= now - FREQUENT_WINDOW)
                 .join(Category, Category.code == Case.category_code).where(Category.active)
                 .group_by(Case.category_code))
        if grid_code is not None:
            query = query.where(Case.grid_code == grid_code)
        counts = {code: n for code, n in session.exec(query).all()}
    with _LOCK:
        _COUNTS.setdefault(engine, {})[grid_code] = (now, counts)
    return counts


def _engine(session: Session) -> sa.Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, sa.Connection) else bind
