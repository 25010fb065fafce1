"""Importing the city → district → street → grid hierarchy from GeoJSON, all or nothing.

`import_geojson` is all-or-nothing: the whole file is checked first (structure, geometry,
codes, levels, parents, cycles, against the file and what is already stored; see
`services.area_checks`), and only a file with no problem at all is written, in one transaction.
Importing the same file again changes nothing; importing a changed file updates the rows in
place (matched by code). Areas that are in the store but not in the file are left alone (an
import never deletes). The grid map follows: this process's at once, others' through the
store's map revision (`refresh_grid_map`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from models.tables import Area, AreaLevel, MapRevision
from services.area_checks import ImportProblem, check_features, check_hierarchy
from services import reference
from services.db import transaction
from services.gridmap import GridMap

_IN_CHUNK = 500  # codes per IN (...) list: far below SQLite's and PostgreSQL's parameter limits
_MAX_PROBLEMS_IN_MESSAGE = 20



class AreaImportError(ValueError):
    """The input was refused; nothing was imported. `problems` lists everything found."""

    def __init__(self, problems: Iterable[ImportProblem]) -> None:
        self.problems: list[ImportProblem] = list(problems)
        shown = [str(p) for p in self.problems[:_MAX_PROBLEMS_IN_MESSAGE]]
        more = len(self.problems) - len(shown)
        text = f"area import refused, {len(self.problems)} problem(s):\n  " + "\n  ".join(shown)
        if more > 0:
            text += f"\n  ... and {more} more"
        super().__init__(text)


@dataclass
class ImportReport:
    """What an import did. `by_level` counts the features in the file per level."""

    by_level: dict[str, int] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    grids_changed: bool = False  # a grid was created, changed, or stopped being a grid
    grid_map_version: int | None = None  # the map's version after the import, when one was given

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


# ---------------------------------------------------------------------------- reading


def _read(data: dict | str | bytes | Path) -> Any:
    """Parse the input. A str starting with '{' is JSON text; any other str or a Path is a
    file name (UTF-8)."""
    if isinstance(data, dict):
        return data
    if isinstance(data, (str, bytes)) and data.lstrip()[:1] in ("{", b"{"):
        text = data
    elif isinstance(data, (str, Path)):
        try:
            text = Path(data).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AreaImportError([ImportProblem(None, None, f"cannot read {str(data)!r}: {exc}")]) from exc
    else:
        what = type(data).__name__
        raise AreaImportError([ImportProblem(None, None, f"expected a dict, JSON text or a path, got {what}")])
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AreaImportError([ImportProblem(None, None, f"not valid JSON: {exc}")]) from exc


# ---------------------------------------------------------------------------- import


def import_geojson(
    session_factory: sessionmaker[Session],
    data: dict | str | bytes | Path,
    *,
    now: datetime,
    grid_map: GridMap | None = None,
) -> ImportReport:
    """Import (create or update by code) the areas of a GeoJSON FeatureCollection.

    Each feature has properties `code`, `name`, `name_en`, `level` (city, district, street or
    grid) and `parent_code`; a grid needs a valid Polygon/MultiPolygon geometry, other levels
    may have one or null. Each parent must be in the file or already stored, one level up.

    Either everything is imported, in one transaction, or nothing is and `AreaImportError`
    lists every problem found, each naming the feature (position and code). `data` is a dict,
    JSON text, or a file path. `now` (aware) becomes `created_at` of new rows. When `grid_map`
    is given and any grid changed, it is rebuilt from the store after the commit.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    features, problems = check_features(_read(data))

    report = ImportReport(by_level=dict(Counter(f.level.value for f in features)))
    with transaction(session_factory) as session:
        # Checked inside the writing transaction so the parents seen are the ones written under.
        stored = {
            code: (AreaLevel(level), parent)
            for code, level, parent in session.exec(select(Area.code, Area.level, Area.parent_code)).all()
        }
        problems += check_hierarchy(features, stored)
        if problems:
            problems.sort(key=lambda p: (-1 if p.index is None else p.index))
            raise AreaImportError(problems)  # rolls back; nothing was written

        existing: dict[str, Area] = {}
        codes = [f.code for f in features if f.code in stored]
        for start in range(0, len(codes), _IN_CHUNK):
            chunk = codes[start : start + _IN_CHUNK]
            existing.update((a.code, a) for a in session.exec(select(Area).where(Area.code.in_(chunk))))
        for f in features:
            values = {
                "name": f.name,
                "name_en": f.name_en,
                "level": f.level,
                "parent_code": f.parent_code,
                "geometry": f.geometry,
            }
            row = existing.get(f.code)
            if row is None:
                session.add(Area(code=f.code, created_at=now, **values))
                report.created += 1
                report.grids_changed |= f.level is AreaLevel.GRID
                continue
            changed = {k: v for k, v in values.items() if getattr(row, k) != v}
            if not changed:
                report.unchanged += 1
                continue
            was_grid = AreaLevel(row.level) is AreaLevel.GRID
            for key, value in changed.items():
                setattr(row, key, value)
            report.updated += 1
            report.grids_changed |= was_grid or f.level is AreaLevel.GRID
        if report.grids_changed:
            _bump_map_revision(session, now)
    if grid_map is not None:
        if report.grids_changed:  # this process at once; others when refresh_grid_map sees the revision
            grid_map.rebuild(session_factory)
        report.grid_map_version = grid_map.version
    return report


def _bump_map_revision(session: Session, now: datetime) -> None:
    stamp = session.get(MapRevision, 1, with_for_update=True)
    if stamp is None:
        session.add(MapRevision(id=1, revision=1, changed_at=now))
    else:
        stamp.revision += 1
        stamp.changed_at = now
        session.add(stamp)
    session.flush()
    reference.bump(session, now)  # names, parents and groups of areas: read afresh everywhere


def refresh_grid_map(session_factory: sessionmaker[Session], grid_map: GridMap) -> bool:
    """Rebuild `grid_map` if another process changed the grids since it was built; True if rebuilt.

    One primary-key read when nothing changed, so a scheduler job can ask every few seconds.
    """
    with session_factory() as session:
        stamp = session.get(MapRevision, 1)
    revision = stamp.revision if stamp is not None else 0
    if grid_map.store_revision == revision:
        return False
    grid_map.rebuild(session_factory)
    return True
