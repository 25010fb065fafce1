"""Areas: importing the city → district → street → grid hierarchy, and walking it.

`import_geojson` is all-or-nothing: the whole file is checked first (structure, geometry,
codes, levels, parents, cycles, against the file and what is already stored), and only a file
with no problem at all is written, in one transaction. Importing the same file again changes
nothing; importing a changed file updates the rows in place (matched by code). Areas that are
in the store but not in the file are left alone (an import never deletes).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from models.tables import AREA_LEVEL_ORDER, Area, AreaLevel, MapRevision
from services.db import transaction

if TYPE_CHECKING:
    from services.gridmap import GridMap

_POLYGONAL = ("Polygon", "MultiPolygon")
_LEVELS = {level.value: level for level in AREA_LEVEL_ORDER}
_RANK = {level: i for i, level in enumerate(AREA_LEVEL_ORDER)}
_CODE_MAX, _NAME_MAX = 64, 200  # column sizes in models.tables.Area
_IN_CHUNK = 500  # codes per IN (...) list: far below SQLite's and PostgreSQL's parameter limits
_MAX_PROBLEMS_IN_MESSAGE = 20


@dataclass(frozen=True)
class ImportProblem:
    """One thing wrong with the input. `index` is the feature's position in `features`
    (0-based), None when the problem is with the file as a whole."""

    index: int | None
    code: str | None
    message: str

    def __str__(self) -> str:
        if self.index is None:
            return f"file: {self.message}"
        where = f"features[{self.index}]"
        if self.code:
            where += f" ({self.code})"
        return f"{where}: {self.message}"


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


@dataclass
class _Feature:
    """A checked feature, ready to write."""

    index: int
    code: str
    name: str
    name_en: str
    level: AreaLevel
    parent_code: str | None
    geometry: str | None  # GeoJSON text


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


# ---------------------------------------------------------------------------- geometry


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ring_problem(ring: Any) -> str | None:
    if not isinstance(ring, list):
        return "a ring is not a list of positions"
    for pos in ring:
        if not isinstance(pos, list) or not 2 <= len(pos) <= 3 or not all(_is_number(v) for v in pos):
            return "a position is not a list of 2 or 3 numbers"
        if not all(math.isfinite(v) for v in pos):
            return "a coordinate is not a finite number (NaN or infinity)"
    if len(ring) < 4:
        return f"a ring has {len(ring)} positions; a closed ring needs at least 4"
    if ring[0] != ring[-1]:
        return "a ring is not closed (its first and last positions differ)"
    return None


def _polygon_problem(rings: Any) -> str | None:
    if not isinstance(rings, list) or not rings:
        return "a polygon must be a non-empty list of rings"
    for ring in rings:
        problem = _ring_problem(ring)
        if problem:
            return problem
    return None


def _check_geometry(obj: Any, level: AreaLevel | None) -> tuple[BaseGeometry | None, list[str]]:
    """Shapely geometry (or None for a null geometry) and the problems found."""
    if obj is None:
        if level is AreaLevel.GRID:
            return None, ["a grid needs a Polygon or MultiPolygon geometry, but it has none"]
        return None, []
    if not isinstance(obj, dict):
        return None, ["geometry is not a GeoJSON geometry object"]
    gtype = obj.get("type")
    if gtype not in _POLYGONAL:
        what = "a grid needs" if level is AreaLevel.GRID else "areas need"
        return None, [f"geometry type {gtype!r} is not allowed; {what} a Polygon or MultiPolygon"]
    coords = obj.get("coordinates")
    if gtype == "Polygon":
        problem = _polygon_problem(coords)
    elif not isinstance(coords, list) or not coords:
        problem = "a MultiPolygon must be a non-empty list of polygons"
    else:
        problem = next((p for p in map(_polygon_problem, coords) if p), None)
    if problem:
        return None, [f"{gtype} geometry is malformed: {problem}"]
    try:
        geom = shape(obj)
    except Exception as exc:  # noqa: BLE001 - any parser complaint is a problem with the input
        return None, [f"{gtype} geometry cannot be read: {exc}"]
    reason = shapely.is_valid_reason(geom)
    if reason != "Valid Geometry":
        # GEOS says e.g. "Self-intersection[0.5 0.5]"; make the place readable.
        where = re.fullmatch(r"(.*)\[(\S+) (\S+)\]", reason)
        if where:
            reason = f"{where[1]} at ({where[2]}, {where[3]})"
        return None, [f"{gtype} geometry is not valid: {reason}"]
    return geom, []


def geometry_text(geom: BaseGeometry) -> str:
    """How geometry is stored in `Area.geometry`: compact GeoJSON text."""
    return json.dumps(mapping(geom), separators=(",", ":"))


# ---------------------------------------------------------------------------- checking


def _check_features(doc: Any) -> tuple[list[_Feature], list[ImportProblem]]:
    """Everything that can be checked without the store."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        return [], [ImportProblem(None, None, "the top level is not a GeoJSON FeatureCollection")]
    raw = doc.get("features")
    if not isinstance(raw, list):
        return [], [ImportProblem(None, None, "the FeatureCollection has no 'features' list")]
    problems: list[ImportProblem] = []
    features: list[_Feature] = []
    first_index: dict[str, int] = {}
    for i, f in enumerate(raw):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            problems.append(ImportProblem(i, None, "is not a GeoJSON Feature"))
            continue
        props = f.get("properties")
        if not isinstance(props, dict):
            problems.append(ImportProblem(i, None, "has no 'properties' object"))
            continue
        here: list[str] = []
        code = props.get("code")
        if not isinstance(code, str) or not code.strip():
            problems.append(ImportProblem(i, None, "has no code (properties.code must be a non-empty string)"))
            code = None
        elif code != code.strip() or len(code) > _CODE_MAX:
            here.append(f"code must have no surrounding spaces and at most {_CODE_MAX} characters")
        elif code in first_index:
            here.append(f"code {code!r} is already used by features[{first_index[code]}]")
        else:
            first_index[code] = i
        name = props.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX:
            here.append(f"name must be a non-empty string of at most {_NAME_MAX} characters")
        name_en = props.get("name_en")
        if name_en is None:
            name_en = ""
        elif not isinstance(name_en, str) or len(name_en) > _NAME_MAX:
            here.append(f"name_en must be a string of at most {_NAME_MAX} characters")
        level = _LEVELS.get(props.get("level")) if isinstance(props.get("level"), str) else None
        if level is None:
            allowed = ", ".join(_LEVELS)
            here.append(f"level {props.get('level')!r} is not one of {allowed}")
        parent = props.get("parent_code")
        if parent is not None and (not isinstance(parent, str) or not parent.strip()):
            here.append("parent_code must be a code or null")
            parent = None
        if "geometry" not in f:
            here.append("has no 'geometry' member (use null for none)")
            geom = None
        else:
            geom, geom_problems = _check_geometry(f["geometry"], level)
            here.extend(geom_problems)
        problems.extend(ImportProblem(i, code, msg) for msg in here)
        if not here and code is not None and level is not None:
            text = geometry_text(geom) if geom is not None else None
            features.append(_Feature(i, code, name, name_en, level, parent, text))
    return features, problems


def _check_hierarchy(
    features: list[_Feature], stored: dict[str, tuple[AreaLevel, str | None]]
) -> list[ImportProblem]:
    """Parents, levels and cycles, against the file merged over the store."""
    problems: list[ImportProblem] = []

    def add(f: _Feature, message: str) -> None:
        problems.append(ImportProblem(f.index, f.code, message))

    in_file = {f.code: f for f in features}
    level_of = {code: lvl for code, (lvl, _) in stored.items()} | {f.code: f.level for f in features}
    parent_of = {code: par for code, (_, par) in stored.items()} | {f.code: f.parent_code for f in features}

    for f in features:
        rank = _RANK[f.level]
        if f.level is AreaLevel.CITY:
            if f.parent_code is not None:
                add(f, f"a city has no parent, but parent_code is {f.parent_code!r}")
            continue
        want = AREA_LEVEL_ORDER[rank - 1]
        if f.parent_code is None:
            add(f, f"a {f.level} needs a parent {want}, but parent_code is null")
        elif f.parent_code == f.code:
            add(f, "is its own parent")
        elif f.parent_code not in level_of:
            add(f, f"parent {f.parent_code!r} is neither in the file nor in the store")
        elif level_of[f.parent_code] is not want:
            got = level_of[f.parent_code]
            add(f, f"parent {f.parent_code!r} is a {got}, but a {f.level}'s parent must be a {want}")

    # Cycles: follow each chain upwards through the merged hierarchy until it ends, reaches
    # a code already known to end well, or comes back to a code on the current path. Each
    # code is walked once, so this stays linear however long a (bad) chain is.
    done: set[str] = set()
    for f in features:
        path: list[str] = []
        position: dict[str, int] = {}
        code: str | None = f.code
        while code is not None and code in parent_of and code not in done and code not in position:
            position[code] = len(path)
            path.append(code)
            code = parent_of[code]
        done.update(path)
        if code is None or code not in position:
            continue
        loop = path[position[code] :]
        members = [c for c in loop if c in in_file]
        if len(loop) == 1 and members:
            continue  # a feature that is its own parent, reported above
        if not members:
            text = " → ".join([*loop, loop[0]])
            add(f, f"parent chain runs into a loop in the store: {text}")
        for c in members:
            at = loop.index(c)
            text = " → ".join([*loop[at:], *loop[:at], c])
            problems.append(ImportProblem(in_file[c].index, c, f"parent chain loops back on itself: {text}"))

    # Stored areas not in the file must still fit under their (possibly re-levelled) parent.
    for code, (lvl, parent) in stored.items():
        if code in in_file or parent not in in_file:
            continue
        p = in_file[parent]
        if _RANK[lvl] == 0 or AREA_LEVEL_ORDER[_RANK[lvl] - 1] is not p.level:
            add(p, f"as a {p.level} it can no longer be the parent of the stored {lvl} {code!r}")
    return problems


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
    features, problems = _check_features(_read(data))

    report = ImportReport(by_level=dict(Counter(f.level.value for f in features)))
    with transaction(session_factory) as session:
        # Checked inside the writing transaction so the parents seen are the ones written under.
        stored = {
            code: (AreaLevel(level), parent)
            for code, level, parent in session.exec(select(Area.code, Area.level, Area.parent_code)).all()
        }
        problems += _check_hierarchy(features, stored)
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


# ---------------------------------------------------------------------------- reading the hierarchy


def get_area(session: Session, code: str) -> Area | None:
    """The area with this code, or None."""
    return session.exec(select(Area).where(Area.code == code)).first()


@sa.event.listens_for(sa.orm.Session, "after_commit")
@sa.event.listens_for(sa.orm.Session, "after_rollback")
def _forget_area_chains(session: sa.orm.Session) -> None:
    """A session's remembered chains last one transaction (see `area_chain`)."""
    session.info.pop("area_chains", None)


def area_chain(session: Session, code: str) -> list[Area]:
    """The area and its ancestors, nearest first: grid → street → district → city.

    Empty when `code` is unknown; stops early at a parent that is missing from the store. Remembered
    for the session (one transaction): registering a case asks for the same chain several times, and
    the hierarchy only changes through an import, which uses its own session.
    """
    cache: dict[str, list[Area]] = session.info.setdefault("area_chains", {})
    if code in cache:
        return list(cache[code])
    chain: list[Area] = []
    seen: set[str] = set()
    next_code: str | None = code
    while next_code is not None and next_code not in seen and len(chain) < len(AREA_LEVEL_ORDER):
        area = get_area(session, next_code)
        if area is None:
            break
        chain.append(area)
        seen.add(next_code)
        next_code = area.parent_code
    cache[code] = chain
    return list(chain)


def supervisor_group(session: Session, area_code: str, *, grid_code: str | None = None) -> tuple[int, int | None] | None:
    """The supervisor group chat of `area_code` (its own, else the nearest above it) and the forum topic
    (`message_thread_id`) bound there for `grid_code` or the nearest area above it that has one."""
    from models.supervision import SupervisorTopic

    for area in area_chain(session, area_code):
        if area.supervisor_chat_id is None:
            continue
        for code in [a.code for a in area_chain(session, grid_code or area.code)]:
            topic = session.exec(select(SupervisorTopic.message_thread_id).where(
                SupervisorTopic.chat_id == area.supervisor_chat_id, SupervisorTopic.area_code == code)).first()
            if topic is not None:
                return area.supervisor_chat_id, topic
        return area.supervisor_chat_id, None
    return None


def grid_at(session: Session, grid_map: GridMap, lon: float, lat: float) -> Area | None:
    """The stored grid covering (lon, lat) per the map's rules, or None outside every grid."""
    code = grid_map.lookup(lon, lat)
    return get_area(session, code) if code is not None else None
