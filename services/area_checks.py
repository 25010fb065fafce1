"""Checking a GeoJSON area file: structure, geometry, codes, levels, parents and cycles.

Nothing here touches the store: `check_features` judges the file alone, `check_hierarchy` the
file merged over the stored (code → level, parent) pairs the caller read. Each problem names the
feature (its position and code), so a refused import lists everything to fix at once.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from models.tables import AREA_LEVEL_ORDER, AreaLevel

_POLYGONAL = ("Polygon", "MultiPolygon")
_LEVELS = {level.value: level for level in AREA_LEVEL_ORDER}
_RANK = {level: i for i, level in enumerate(AREA_LEVEL_ORDER)}
_CODE_MAX, _NAME_MAX = 64, 200  # column sizes in models.tables.Area



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


@dataclass
class CheckedFeature:
    """A checked feature, ready to write."""

    index: int
    code: str
    name: str
    name_en: str
    level: AreaLevel
    parent_code: str | None
    geometry: str | None  # GeoJSON text


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


def check_features(doc: Any) -> tuple[list[CheckedFeature], list[ImportProblem]]:
    """Everything that can be checked without the store."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        return [], [ImportProblem(None, None, "the top level is not a GeoJSON FeatureCollection")]
    raw = doc.get("features")
    if not isinstance(raw, list):
        return [], [ImportProblem(None, None, "the FeatureCollection has no 'features' list")]
    problems: list[ImportProblem] = []
    features: list[CheckedFeature] = []
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
            features.append(CheckedFeature(i, code, name, name_en, level, parent, text))
    return features, problems


def check_hierarchy(
    features: list[CheckedFeature], stored: dict[str, tuple[AreaLevel, str | None]]
) -> list[ImportProblem]:
    """Parents, levels and cycles, against the file merged over the store."""
    problems: list[ImportProblem] = []

    def add(f: CheckedFeature, message: str) -> None:
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
