"""Reference data read once per store revision: categories, departments, intake rules and area chains.

Registering a case reads its category, its intake rule and its grid's chain of areas. These change
rarely (a map import, a catalogue load, a category edit, a supervisor group bound), so each process
keeps them in memory, per store (engine), and checks one revision number per transaction.

What callers may rely on:
- Every writer of those tables calls `bump(session)` in its transaction; the next transaction of
  any process (after that commit) reads afresh. The check is one primary-key read per transaction.
- The objects handed out are transient copies: read them, never add them to a session.
"""

from __future__ import annotations

import threading
from functools import cache
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlmodel import Session

from models.api import IntakeRule
from models.tables import Area, Category, Department, MapRevision
from services import rows

REFERENCE_ROW = 2  # map_revision row 1 is the grid map's own revision (services/area_import.py)
_REVISION = sa.select(MapRevision.revision).where(MapRevision.id == REFERENCE_ROW)
_MISSING = object()


class ReferenceCache:
    """One store's reference data at one revision."""

    def __init__(self) -> None:
        self.revision: int | None = None
        self.lock = threading.Lock()
        self.categories: dict[str, Category | None] = {}
        self.rules: dict[str, IntakeRule | None] = {}
        self.areas: dict[str, Area | None] = {}
        self.departments: dict[str, Department | None] = {}
        self.all_areas = False  # every area of the revision is in `areas` (read at its first miss)

    def sync(self, revision: int) -> None:
        with self.lock:
            if revision != self.revision:
                self.categories, self.rules, self.areas, self.departments = {}, {}, {}, {}
                self.all_areas = False
                self.revision = revision


_CACHES: WeakKeyDictionary[sa.Engine, ReferenceCache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(session: Session) -> ReferenceCache:
    """The store's cache, checked against the revision once per transaction of `session`."""
    tx = session.get_transaction()
    held = session.info.get("reference")
    if held is not None and held[0] is tx:
        return held[1]
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, sa.Connection) else bind
    with _CACHES_LOCK:
        cache = _CACHES.get(engine)
        if cache is None:
            cache = _CACHES[engine] = ReferenceCache()
    cache.sync(session.execute(_REVISION).scalar() or 0)
    session.info["reference"] = (tx, cache)
    return cache


def _copy(session: Session, model: type, column: sa.Column, code: str) -> object | None:
    """A transient copy of the row, read with Core so the session's own objects are never touched."""
    row = session.execute(_read_one(model, column.key), {"code": code}).mappings().first()
    return rows.new(model, **row) if row is not None else None


@cache
def _read_one(model: type, column: str) -> sa.Select:
    """The row by `column`, built once per table."""
    return _read_every(model).where(model.__table__.c[column] == sa.bindparam("code"))


@cache
def _read_every(model: type) -> sa.Select:
    """Every row, without an area's geometry: nothing asks the cache for it (the grid index holds the
    shapes), and a polygon per grid would be most of the cache's memory."""
    return sa.select(*(c for c in model.__table__.columns if not (model is Area and c.key == "geometry")))


def _lookup(session: Session, kind: str, model: type, column: sa.Column, code: str) -> object | None:
    """The cached row of `model` whose `column` is `code` (None cached too), read on a miss."""
    found_in: dict[str, object | None] = getattr(_cache(session), kind)
    found = found_in.get(code, _MISSING)
    if found is _MISSING:
        found = found_in[code] = _copy(session, model, column, code)
    return found


def category(session: Session, code: str) -> Category | None:
    """The category with this code (active or not), or None."""
    return _lookup(session, "categories", Category, Category.__table__.c.code, code)  # type: ignore[return-value]


def department(session: Session, code: str) -> Department | None:
    """The department with this code, or None (a work order names it on every offer)."""
    return _lookup(session, "departments", Department, Department.__table__.c.code, code)  # type: ignore[return-value]


def intake_rule(session: Session, code: str) -> IntakeRule | None:
    """The category's own intake rule, or None (the settings' default applies)."""
    return _lookup(session, "rules", IntakeRule, IntakeRule.__table__.c.category_code, code)  # type: ignore[return-value]


def area(session: Session, code: str) -> Area | None:
    """The area with this code, or None; its `geometry` is not held (None): read the row for it.

    The first miss at a revision reads every area at once: a burst of camera cases over a city's grids
    would otherwise read each grid's row with a query of its own."""
    cache = _cache(session)
    found = cache.areas.get(code, _MISSING)
    if found is _MISSING and not cache.all_areas:
        _read_all_areas(session, cache)
        found = cache.areas.get(code, _MISSING)
    if found is _MISSING:  # unknown at the revision's read: asked again, and remembered
        found = cache.areas[code] = _copy(session, Area, Area.__table__.c.code, code)
    return found  # type: ignore[return-value]


def _read_all_areas(session: Session, cache: ReferenceCache) -> None:
    revision = cache.revision
    read = {row["code"]: rows.new(Area, **row) for row in session.execute(_read_every(Area)).mappings()}
    with cache.lock:
        if cache.revision == revision:  # else reset meanwhile: the next ask reads the new revision's
            cache.areas.update(read)
            cache.all_areas = True


def bump(session: Session, now: datetime | None = None) -> None:
    """Reference data changed in this transaction: every process reads it afresh after the commit."""
    now = now or datetime.now(UTC)
    updated = session.execute(sa.update(MapRevision).where(MapRevision.id == REFERENCE_ROW)
                              .values(revision=MapRevision.revision + 1, changed_at=now)).rowcount
    if not updated:
        session.add(MapRevision(id=REFERENCE_ROW, revision=1, changed_at=now))
        session.flush()
    session.info.pop("reference", None)
