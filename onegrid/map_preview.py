"""Words and a picture for `onegrid grids import --dry-run`: a short summary and an SVG of the map.

The picture draws every grid (streets and districts as outlines), coloured by what the import would do,
and marks the flaws on top: orphan grids red, overlaps orange, gaps purple, stored areas the file lacks
grey and dashed. Longitude is scaled by cos(latitude) so the city keeps its shape. The legend is English,
like the rest of the operator's command line.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from shapely.geometry.base import BaseGeometry

from models.tables import AreaLevel
from services.area_preview import MapPreview, ShapeState

WIDTH = 1200
MAX_HEIGHT = 1600
MARGIN = 20
LEGEND_HEIGHT = 30

FILL = {ShapeState.UNCHANGED: "#e4ecf4", ShapeState.CHANGED: "#9cc3e6", ShapeState.ADDED: "#b8e0b0",
        ShapeState.ORPHAN: "#e53935", ShapeState.STORED_ONLY: "none"}
LEGEND = [("#e4ecf4", "unchanged"), ("#9cc3e6", "changed"), ("#b8e0b0", "added"), ("#e53935", "grid without parent"),
          ("#ff9800", "overlap"), ("#8e24aa", "gap"), ("#9e9e9e", "in store, not in file")]


def _listing(codes: list[str], limit: int = 8) -> str:
    shown = ", ".join(codes[:limit])
    return shown + (f" … (+{len(codes) - limit})" if len(codes) > limit else "")


def summary(report: MapPreview, source: str) -> list[str]:
    """A few lines for the operator: counts first, then each kind of flaw with the worst examples."""
    lines = [f"dry run of {source}: nothing was written",
             f"areas in the file: {report.in_file}: {len(report.added)} added, {len(report.changed)} changed, "
             f"{len(report.unchanged)} unchanged"]
    if report.stored_only:
        lines.append(f"in the store but not in the file (an import keeps them): {len(report.stored_only)}: "
                     f"{_listing(report.stored_only)}")
    if report.orphans:
        lines.append(f"grids without a parent: {len(report.orphans)}: {_listing(report.orphans)}")
    if report.overlaps:
        worst = [f"{o.first} × {o.second} ({o.area_m2:,.0f} m²)" for o in report.overlaps[:5]]
        lines.append(f"overlapping grids: {len(report.overlaps)} pair(s): {_listing(worst, 5)}")
    if report.gaps:
        worst = [f"{g.area_m2:,.0f} m² {'in ' + g.parent if g.parent else 'between grids'} "
                 f"near {g.where[0]:.5f},{g.where[1]:.5f}" for g in report.gaps[:5]]
        lines.append(f"gaps over {report.gap_threshold_m2:,.0f} m²: {len(report.gaps)}: {_listing(worst, 5)}")
    if report.problems:
        lines.append(f"the import would be refused: {len(report.problems)} problem(s):")
        lines += [f"  {p}" for p in report.problems[:20]]
        if len(report.problems) > 20:
            lines.append(f"  … and {len(report.problems) - 20} more")
    else:
        flaws = bool(report.orphans or report.overlaps or report.gaps)
        lines.append("the import would be accepted" + (", but look at the flaws above first" if flaws else ""))
    return lines


class _Frame:
    """lon/lat → SVG pixels, north up."""

    def __init__(self, bounds: tuple[float, float, float, float]) -> None:
        import math

        minx, miny, maxx, maxy = bounds
        self.minx, self.maxy = minx, maxy
        self.kx = math.cos(math.radians((miny + maxy) / 2))
        span_x = max((maxx - minx) * self.kx, 1e-9)
        span_y = max(maxy - miny, 1e-9)
        self.scale = min((WIDTH - 2 * MARGIN) / span_x, (MAX_HEIGHT - 2 * MARGIN - LEGEND_HEIGHT) / span_y)
        self.height = int(span_y * self.scale) + 2 * MARGIN + LEGEND_HEIGHT

    def path(self, geom: BaseGeometry) -> str:
        parts = []
        for polygon in getattr(geom, "geoms", [geom]):
            if polygon.geom_type != "Polygon":
                continue
            for ring in [polygon.exterior, *polygon.interiors]:
                points = [(MARGIN + (x - self.minx) * self.kx * self.scale,
                           MARGIN + LEGEND_HEIGHT + (self.maxy - y) * self.scale) for x, y, *_ in ring.coords]
                parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z")
        return "".join(parts)


def preview_svg(report: MapPreview) -> str:
    """The map as a standalone SVG document (width 1200 px, height by the map's shape)."""
    shapes = report.shapes
    if shapes:
        import shapely

        frame = _Frame(shapely.union_all([g.envelope for *_, g in shapes]).bounds)
    else:
        frame = _Frame((0.0, 0.0, 1.0, 1.0))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{frame.height}" '
           f'viewBox="0 0 {WIDTH} {frame.height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{frame.height}" fill="#ffffff"/>']
    x = MARGIN
    for colour, label in LEGEND:
        out.append(f'<rect x="{x}" y="{MARGIN - 10}" width="12" height="12" fill="{colour}" stroke="#555"/>'
                   f'<text x="{x + 16}" y="{MARGIN}">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    for code, level, state, geom in shapes:
        d = frame.path(geom)
        title = f"<title>{escape(code)} ({level.value}, {state})</title>"
        if state == ShapeState.STORED_ONLY:
            out.append(f'<path d="{d}" fill="none" stroke="#9e9e9e" stroke-dasharray="4 3">{title}</path>')
        elif level is AreaLevel.GRID:
            out.append(f'<path d="{d}" fill="{FILL[state]}" fill-rule="evenodd" stroke="#607d8b" '
                       f'stroke-width="0.5">{title}</path>')
        else:
            width = {AreaLevel.STREET: 1.2, AreaLevel.DISTRICT: 2.0}.get(level, 2.5)
            out.append(f'<path d="{d}" fill="none" stroke="#263238" stroke-width="{width}">{title}</path>')
    for overlap in report.overlaps:
        out.append(f'<path d="{frame.path(overlap.geometry)}" fill="#ff9800" fill-opacity="0.8" stroke="#e65100">'
                   f"<title>overlap {escape(overlap.first)} × {escape(overlap.second)}: "
                   f"{overlap.area_m2:,.0f} m²</title></path>")
    for gap in report.gaps:
        out.append(f'<path d="{frame.path(gap.geometry)}" fill="#8e24aa" fill-opacity="0.8" stroke="#4a148c">'
                   f"<title>gap {escape(gap.parent or 'between grids')}: {gap.area_m2:,.0f} m²</title></path>")
    out.append("</svg>\n")
    return "\n".join(out)
