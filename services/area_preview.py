"""A dry run of an area import (`onegrid grids import --dry-run FILE`): what would change, and what looks wrong.

`preview_import` reads the store but never writes it. It reports:
- the areas the import would add, change (any of name, name_en, level, parent, geometry) or leave as they
  are, and the stored areas missing from the file (an import keeps them; they are listed so a wrong
  file shows);
- every problem that would make the real import refuse the file (`services.area_checks`);
- grids without a parent (none given, or a parent in neither the file nor the store);
- pairs of grids that overlap, and gaps: places inside a street (or any other parent with a geometry)
  that no grid of it covers, and holes enclosed by grids, larger than `gap_threshold_m2`. Slivers
  narrower than `sliver_m` everywhere (neighbours' edges digitised a metre apart) count as neither.
Areas are measured in square metres on a local flat projection (fine at city scale). The geometries
are kept (`MapPreview.shapes`) for a picture of the map; the picture itself is drawn by the caller.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from models.tables import AREA_LEVEL_ORDER, Area, AreaLevel
from services.area_checks import ImportProblem, check_features, check_hierarchy
from services.area_import import AreaImportError, _read as read_source  # JSON text, a dict or a path

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0
MIN_OVERLAP_M2 = 1.0
SLIVER_M = 2.0  # overlaps and gaps narrower than this are rounding between neighbours' edges, not flaws


class ShapeState:
    ADDED = "added"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    STORED_ONLY = "stored_only"  # in the store, not in the file (kept by an import)
    ORPHAN = "orphan"


@dataclass(frozen=True)
class Overlap:
    first: str
    second: str
    area_m2: float
    geometry: BaseGeometry


@dataclass(frozen=True)
class Gap:
    parent: str | None  # the area whose grids leave it uncovered; None for a hole between grids
    area_m2: float
    geometry: BaseGeometry

    @property
    def where(self) -> tuple[float, float]:
        point = self.geometry.representative_point()
        return point.x, point.y


@dataclass
class MapPreview:
    in_file: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stored_only: list[str] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    gap_threshold_m2: float = 0.0
    # (code, level, state, geometry) of every area with a geometry, grids last, for the picture.
    shapes: list[tuple[str, AreaLevel, str, BaseGeometry]] = field(default_factory=list)

    @property
    def would_import(self) -> bool:
        return not self.problems


def area_m2(geom: BaseGeometry, lat: float | None = None) -> float:
    """Square metres of a lon/lat geometry (flat projection at its own latitude)."""
    if geom.is_empty:
        return 0.0
    lat = geom.centroid.y if lat is None else lat
    return geom.area * _M_PER_DEG_LAT * _M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat))


def _sliver(geom: BaseGeometry, width_m: float) -> bool:
    """Whether nothing of `geom` is wider than `width_m` (it vanishes when shrunk by half that)."""
    return width_m > 0 and geom.buffer(-width_m / 2 / _M_PER_DEG_LAT).is_empty


def preview_import(session_factory: sessionmaker[Session], source: dict | str | bytes | Path, *,
                   gap_threshold_m2: float = 100.0, sliver_m: float = SLIVER_M) -> MapPreview:
    """What importing `source` would do, and its map's flaws; nothing is written."""
    try:
        doc = read_source(source)
    except AreaImportError as exc:
        return MapPreview(problems=exc.problems, gap_threshold_m2=gap_threshold_m2)
    features, problems = check_features(doc)
    with session_factory() as session:
        stored_rows = {a.code: a for a in session.exec(select(Area))}
    stored = {code: (AreaLevel(a.level), a.parent_code) for code, a in stored_rows.items()}
    problems += check_hierarchy(features, stored)
    problems.sort(key=lambda p: (-1 if p.index is None else p.index))
    report = MapPreview(in_file=len(features), problems=problems, gap_threshold_m2=gap_threshold_m2)

    known = set(stored) | {f.code for f in features}
    geometries: dict[str, BaseGeometry] = {}
    states: dict[str, str] = {}
    levels: dict[str, AreaLevel] = {}
    parents: dict[str, str | None] = {}
    for f in features:
        row = stored_rows.get(f.code)
        if row is None:
            report.added.append(f.code)
            states[f.code] = ShapeState.ADDED
        elif (row.name, row.name_en, AreaLevel(row.level), row.parent_code, row.geometry) != (
                f.name, f.name_en, f.level, f.parent_code, f.geometry):
            report.changed.append(f.code)
            states[f.code] = ShapeState.CHANGED
        else:
            report.unchanged.append(f.code)
            states[f.code] = ShapeState.UNCHANGED
        if f.level is AreaLevel.GRID and (f.parent_code is None or f.parent_code not in known):
            report.orphans.append(f.code)
            states[f.code] = ShapeState.ORPHAN
        levels[f.code], parents[f.code] = f.level, f.parent_code
        if f.geometry:
            geometries[f.code] = shape(json.loads(f.geometry))
    in_file = set(levels)
    for code, row in stored_rows.items():
        if code in in_file:
            continue
        report.stored_only.append(code)
        states[code], levels[code], parents[code] = ShapeState.STORED_ONLY, AreaLevel(row.level), row.parent_code
        if row.geometry:
            geometries[code] = shape(json.loads(row.geometry))

    grids = sorted(c for c in geometries if levels[c] is AreaLevel.GRID)
    report.overlaps = [o for o in _overlaps(grids, geometries) if not _sliver(o.geometry, sliver_m)]
    report.gaps = [g for g in _gaps(grids, geometries, levels, parents, gap_threshold_m2)
                   if not _sliver(g.geometry, sliver_m)]
    rank = {level: i for i, level in enumerate(AREA_LEVEL_ORDER)}
    report.shapes = sorted(((c, levels[c], states[c], g) for c, g in geometries.items()),
                           key=lambda s: (rank[s[1]], s[0]))
    return report


def _overlaps(grids: list[str], geometries: dict[str, BaseGeometry]) -> list[Overlap]:
    shapes = [geometries[c] for c in grids]
    if len(shapes) < 2:
        return []
    tree = STRtree(shapes)
    left, right = tree.query(shapes, predicate="intersects")
    found = []
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j:
            continue
        common = shapely.intersection(shapes[i], shapes[j])
        size = area_m2(common)
        if size >= MIN_OVERLAP_M2:
            found.append(Overlap(grids[i], grids[j], size, common))
    return sorted(found, key=lambda o: -o.area_m2)


def _pieces(geom: BaseGeometry) -> list[BaseGeometry]:
    return list(getattr(geom, "geoms", [geom])) if not geom.is_empty else []


def _gaps(grids: list[str], geometries: dict[str, BaseGeometry], levels: dict[str, AreaLevel],
          parents: dict[str, str | None], threshold: float) -> list[Gap]:
    if not grids:
        return []
    gaps: list[Gap] = []
    children: dict[str, list[BaseGeometry]] = {}
    for code in grids:
        if parents.get(code):
            children.setdefault(parents[code], []).append(geometries[code])
    for parent, shapes in sorted(children.items()):
        outline = geometries.get(parent)
        if outline is None:
            continue
        for piece in _pieces(shapely.difference(outline, shapely.union_all(shapes))):
            if piece.geom_type == "Polygon" and (size := area_m2(piece)) >= threshold:
                gaps.append(Gap(parent, size, piece))
    covered = shapely.union_all([geometries[c] for c in grids])
    for polygon in _pieces(covered):
        for ring in getattr(polygon, "interiors", []):
            hole = shapely.Polygon(ring)
            if (size := area_m2(hole)) >= threshold and not any(g.geometry.covers(hole) for g in gaps):
                gaps.append(Gap(None, size, hole))
    return sorted(gaps, key=lambda g: -g.area_m2)
