"""Point → grid lookup, in memory.

`GridIndex` answers "which grid is (lon, lat) in?" exactly, with the same boundary rule
everywhere:

* a point on a grid's edge or vertex belongs to that grid (covers semantics, not contains);
* a point covered by several grids (a shared edge or vertex, or a sliver where rounded
  polygons overlap) belongs to the grid whose code sorts first (plain `str` ordering);
* a point covered by no grid, or with a NaN/infinite coordinate, gives None.

`lookup` (one point) and `lookup_many` (arrays) follow that rule exactly, so they always agree.

How it is fast: a uniform lattice is laid over the bounds of all grids. Each lattice cell is
classified once, at build time, with vectorised shapely calls: a cell that no grid touches
answers None; a cell whose first grid (by code) covers the whole cell answers that code by list
lookup; any other ("mixed") cell keeps its few candidate grids, in code order, and each is
checked exactly with a prepared geometry. Cells are classified slightly enlarged (by a tiny
margin) so that floating-point rounding in "which cell is this point in" can never put a point
in a cell whose answer does not hold for it.

The shared, swappable holder of the current index is `services.gridmap.GridMap`.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

# The raw ufunc skips shapely's Python wrapper (argument checks, thread-safety decorator),
# which roughly halves the cost of one scalar point-in-polygon check (~1.3 µs instead of
# ~2.6 µs). It is part of shapely 2's compiled module; fall back to the public name otherwise.
try:  # pragma: no cover - depends on the shapely build
    from shapely.lib import intersects_xy as _intersects_xy
except ImportError:  # pragma: no cover
    _intersects_xy = shapely.intersects_xy

# Lattice sizing. About CELLS_PER_GRID cells per grid (measured on the median grid bounding
# box) keeps most cells inside a single grid; MAX_CELLS bounds memory (a cell costs about
# 8 bytes in the scalar table plus 4 in the vectorised one).
DEFAULT_CELLS_PER_GRID = 32.0
DEFAULT_MAX_CELLS = 4_000_000
# Cells classified per vectorised batch: bounds the temporary shapely boxes (~300 B each).
_BATCH_CELLS = 131_072

_EMPTY = -1  # cell state: no grid touches the cell

Coordinates = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class IndexStats:
    """Shape of a built index, for benchmarks and logs."""

    grids: int
    nx: int
    ny: int
    empty_cells: int
    pure_cells: int
    mixed_cells: int
    mean_candidates: float  # grids per mixed cell

    @property
    def cells(self) -> int:
        return self.nx * self.ny


class GridIndex:
    """Immutable point → grid code index. Build it with `GridIndex.build`.

    Safe to share between threads once built (nothing in it changes after `build`).
    """

    def __init__(self) -> None:  # use GridIndex.build
        self._codes: list[str] = []
        self._geoms = np.empty(0, dtype=object)
        self._x0 = self._y0 = 0.0
        self._x1 = self._y1 = -1.0  # empty bounds: nothing is inside
        self._sx = self._sy = 0.0
        self._nx = self._ny = 1
        self._cells: list[Any] = [None]  # per cell: None | code | tuple of (code, geometry)
        self._state = np.full(1, _EMPTY, dtype=np.int32)  # per cell: grid no. | -1 | -2 - slot
        self._cand_ptr = np.zeros(1, dtype=np.int64)  # per mixed slot: range in _cand_grid
        self._cand_grid = np.empty(0, dtype=np.int32)  # grid numbers, ascending (= code order)
        self._codes_or_none = np.array([None], dtype=object)
        self._mixed_slots = 0

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        grids: Iterable[tuple[str, BaseGeometry]],
        *,
        cells_per_grid: float = DEFAULT_CELLS_PER_GRID,
        max_cells: int = DEFAULT_MAX_CELLS,
    ) -> GridIndex:
        """Build an index from (code, geometry) pairs.

        Geometries are normally Polygon/MultiPolygon; any shapely geometry works with the same
        covers rule, and empty ones simply never match. Raises ValueError on a duplicate code,
        a missing geometry or a non-finite coordinate. The geometries are prepared in place
        (`shapely.prepare`), which does not change them. `cells_per_grid` and `max_cells` tune
        the lattice (speed against memory); the answers do not depend on them.
        """
        pairs = []
        for code, geom in grids:
            if not isinstance(code, str):
                raise ValueError(f"grid code {code!r} is not a string")
            pairs.append((str.__str__(code), geom))  # plain str: lookup tells codes by class
        pairs.sort(key=lambda cg: cg[0])
        codes = [c for c, _ in pairs]
        for a, b in zip(codes, codes[1:]):
            if a == b:
                raise ValueError(f"duplicate grid code {a!r}")
        for code, geom in pairs:
            if not isinstance(geom, BaseGeometry):
                raise ValueError(f"grid {code!r} has no shapely geometry")
        self = cls()
        self._codes = codes
        geoms = np.empty(len(pairs), dtype=object)
        geoms[:] = [g for _, g in pairs]
        self._geoms = geoms
        self._codes_or_none = np.array([*codes, None], dtype=object)  # index -1 → None
        live = ~shapely.is_empty(geoms) if len(geoms) else np.zeros(0, dtype=bool)
        if not live.any():
            return self
        coords, owner = shapely.get_coordinates(geoms, include_z=False, return_index=True)
        finite = np.isfinite(coords).all(axis=1)
        if not finite.all():
            raise ValueError(f"grid {codes[owner[np.argmin(finite)]]!r} has a non-finite coordinate")
        bounds = shapely.bounds(geoms[live])
        shapely.prepare(geoms)
        # The build makes millions of short-lived Python objects (boxes, tuples); with the
        # cyclic GC on, each full collection walks every object in the process (the parsed
        # map included), which made the build several times slower. Nothing here makes cycles.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._build_lattice(bounds, cells_per_grid=cells_per_grid, max_cells=max_cells)
        finally:
            if gc_was_enabled:
                gc.enable()
        return self

    def _build_lattice(self, bounds: np.ndarray, *, cells_per_grid: float, max_cells: int) -> None:
        x0, y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        x1, y1 = float(bounds[:, 2].max()), float(bounds[:, 3].max())
        width, height = x1 - x0, y1 - y0
        # Cell size from the typical (median) grid bounding box rather than the map's extent,
        # so sea or a few huge grids do not make the cells coarse; degenerate (zero-size)
        # boxes fall back to the overall extent.
        box_area = float(np.median((bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])))
        if box_area <= 0.0:
            box_area = max(width * height, width * width, height * height) / max(len(bounds), 1)
        side = math.sqrt(box_area / max(cells_per_grid, 1e-9)) if box_area > 0 else 1.0
        nx = max(1, math.ceil(width / side)) if width > 0 else 1
        ny = max(1, math.ceil(height / side)) if height > 0 else 1
        if nx * ny > max_cells:
            shrink = math.sqrt(max(max_cells, 1) / (nx * ny))
            nx = max(1, int(nx * shrink))
            ny = max(1, int(ny * shrink))
        cw = width / nx
        ch = height / ny
        # The margin must exceed the rounding error of "which cell is this point in"
        # (a few ulps of the coordinates) and stay far below a cell.
        scale = max(abs(x0), abs(x1), abs(y0), abs(y1), 1.0)
        margin = max(1e-6 * max(cw, ch), 1e-12 * scale)

        self._x0, self._y0, self._x1, self._y1 = x0, y0, x1, y1
        self._nx, self._ny = nx, ny
        self._sx = nx / width if width > 0 else 0.0
        self._sy = ny / height if height > 0 else 0.0

        geoms = self._geoms
        ncells = nx * ny
        state = np.full(ncells, _EMPTY, dtype=np.int32)
        # Cells outside every grid's bounding box are empty without any geometry test: count,
        # per cell, the (enlarged) bounding boxes over it with a 2-d difference array. Twice
        # the margin keeps every cell whose enlarged box touches a bounding box (see above).
        live = np.nonzero(~shapely.is_empty(geoms))[0]
        bx = shapely.bounds(geoms[live])
        ix_a = np.clip(np.floor((bx[:, 0] - 2 * margin - x0) * self._sx), 0, nx - 1).astype(np.int64)
        ix_b = np.clip(np.floor((bx[:, 2] + 2 * margin - x0) * self._sx), 0, nx - 1).astype(np.int64)
        iy_a = np.clip(np.floor((bx[:, 1] - 2 * margin - y0) * self._sy), 0, ny - 1).astype(np.int64)
        iy_b = np.clip(np.floor((bx[:, 3] + 2 * margin - y0) * self._sy), 0, ny - 1).astype(np.int64)
        diff = np.zeros((ny + 1, nx + 1), dtype=np.int32)
        np.add.at(diff, (iy_a, ix_a), 1)
        np.add.at(diff, (iy_a, ix_b + 1), -1)
        np.add.at(diff, (iy_b + 1, ix_a), -1)
        np.add.at(diff, (iy_b + 1, ix_b + 1), 1)
        covering = np.cumsum(np.cumsum(diff, axis=0, dtype=np.int32), axis=1, dtype=np.int32)
        under_box = covering[:ny, :nx].ravel() > 0
        del covering
        del diff
        todo = np.nonzero(under_box)[0]
        del under_box

        tree = shapely.STRtree(geoms)
        mixed_cells: list[np.ndarray] = []
        mixed_counts: list[np.ndarray] = []
        mixed_grids: list[np.ndarray] = []
        n_mixed = 0
        for b0 in range(0, len(todo), _BATCH_CELLS):
            cell_ids = todo[b0 : b0 + _BATCH_CELLS]
            iy, ix = np.divmod(cell_ids, nx)
            boxes = shapely.box(
                x0 + ix * cw - margin, y0 + iy * ch - margin,
                x0 + (ix + 1) * cw + margin, y0 + (iy + 1) * ch + margin,
            )
            # Which grids touch each (enlarged) cell, in code order per cell.
            b_idx, g_idx = tree.query(boxes, predicate="intersects")
            order = np.lexsort((g_idx, b_idx))
            b_idx, g_idx = b_idx[order], g_idx[order].astype(np.int32)
            counts = np.bincount(b_idx, minlength=len(boxes))
            starts = np.cumsum(counts) - counts
            touched = np.nonzero(counts)[0]
            if not len(touched):
                continue
            first = g_idx[starts[touched]]
            # The grid that sorts first wins any tie, so if it covers the whole cell it is
            # the answer for every point in it, whatever else touches the cell.
            pure = shapely.covers(geoms[first], boxes[touched])
            state[cell_ids[touched[pure]]] = first[pure]
            mixed = touched[~pure]
            if len(mixed):
                state[cell_ids[mixed]] = -2 - (n_mixed + np.arange(len(mixed), dtype=np.int32))
                n_mixed += len(mixed)
                mixed_cells.append(cell_ids[mixed])
                mixed_counts.append(counts[mixed])
                mixed_grids.append(g_idx[np.repeat(~pure, counts[touched])])
            del boxes

        cand_counts = np.concatenate(mixed_counts) if mixed_counts else np.zeros(0, dtype=np.int64)
        self._cand_ptr = np.concatenate([[0], np.cumsum(cand_counts)]).astype(np.int64)
        self._cand_grid = np.concatenate(mixed_grids) if mixed_grids else np.empty(0, dtype=np.int32)
        self._state = state
        self._mixed_slots = len(cand_counts)

        # The scalar path reads a plain list (list indexing is far cheaper than numpy scalar
        # indexing): the code string, None, or a tuple of (code, prepared geometry) pairs.
        # Neighbouring mixed cells mostly have the same candidates, so each distinct candidate
        # set gets one tuple, shared; sets are deduplicated with numpy, grouped by size.
        cells = np.empty(ncells, dtype=object)
        pure_mask = state >= 0
        cells[pure_mask] = self._codes_or_none[state[pure_mask]]
        if self._mixed_slots:
            pair = [(code, geom) for code, geom in zip(self._codes, geoms)]
            entries = np.empty(self._mixed_slots, dtype=object)
            for size in np.unique(cand_counts).tolist():
                slots = np.nonzero(cand_counts == size)[0]
                rows = self._cand_grid[self._cand_ptr[slots][:, None] + np.arange(size)]
                distinct, which = np.unique(rows, axis=0, return_inverse=True)
                made = np.empty(len(distinct), dtype=object)
                for i, key in enumerate(distinct.tolist()):
                    made[i] = tuple(pair[g] for g in key)
                entries[slots] = made[which.reshape(-1)]
            cells[np.concatenate(mixed_cells)] = entries
            del entries
        self._cells = cells.tolist()
        del cells
        # Point-in-polygon on a prepared geometry builds its edge index on first use; do it
        # now so the first lookups are not slow and concurrent readers never race to build it.
        # (The probe must lie inside each geometry's envelope, or GEOS answers from the
        # envelope alone and builds nothing.)
        used = np.unique(self._cand_grid)
        if len(used):
            ub = shapely.bounds(geoms[used])
            _intersects_xy(geoms[used], (ub[:, 0] + ub[:, 2]) / 2, (ub[:, 1] + ub[:, 3]) / 2)

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Number of grids in the index."""
        return len(self._codes)

    @property
    def codes(self) -> list[str]:
        """All grid codes, sorted."""
        return list(self._codes)

    def lookup(self, lon: float, lat: float) -> str | None:
        """The code of the grid covering (lon, lat), or None if no grid does.

        Points on an edge or vertex belong to the grid; where several grids cover the point,
        the smallest code wins. NaN or infinite coordinates give None. Raises TypeError only
        for arguments that are not numbers.
        """
        x = float(lon)
        y = float(lat)
        # Also rejects NaN (every comparison is False) and ±inf (outside finite bounds).
        if not (self._x0 <= x <= self._x1 and self._y0 <= y <= self._y1):
            return None
        ix = int((x - self._x0) * self._sx)
        nx = self._nx
        if ix >= nx:  # x == x1, or rounding at the far edge
            ix = nx - 1
        iy = int((y - self._y0) * self._sy)
        if iy >= self._ny:
            iy = self._ny - 1
        entry = self._cells[iy * nx + ix]
        if entry is None or entry.__class__ is str:
            return entry
        for code, geom in entry:  # candidates in code order: the first hit is the smallest
            if _intersects_xy(geom, x, y):
                return code
        return None

    def lookup_many(self, lons: Coordinates, lats: Coordinates) -> list[str | None]:
        """`lookup` for many points at once: element i is `lookup(lons[i], lats[i])`.

        Takes anything numpy turns into a 1-d float array of equal lengths (ValueError
        otherwise).
        """
        x = np.asarray(lons, dtype=np.float64).ravel()
        y = np.asarray(lats, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"lons and lats differ in length ({len(x)} != {len(y)})")
        out = np.full(len(x), -1, dtype=np.int64)
        with np.errstate(invalid="ignore"):
            inside = (x >= self._x0) & (x <= self._x1) & (y >= self._y0) & (y <= self._y1)
        pts = np.nonzero(inside)[0]
        if len(pts):
            px, py = x[pts], y[pts]
            # Same arithmetic as `lookup`, so each point lands in the same cell.
            ix = np.minimum(((px - self._x0) * self._sx).astype(np.int64), self._nx - 1)
            iy = np.minimum(((py - self._y0) * self._sy).astype(np.int64), self._ny - 1)
            st = self._state[iy * self._nx + ix]
            pure = st >= 0
            out[pts[pure]] = st[pure]
            is_mixed = st <= -2
            if is_mixed.any():
                m_pts = pts[is_mixed]
                slots = (-2 - st[is_mixed]).astype(np.int64)
                start = self._cand_ptr[slots]
                count = self._cand_ptr[slots + 1] - start
                # One row per (point, candidate), candidates ascending within each point.
                rep = np.repeat(np.arange(len(m_pts)), count)
                offs = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
                grid = self._cand_grid[np.repeat(start, count) + offs]
                hit = _intersects_xy(self._geoms[grid], x[m_pts][rep], y[m_pts][rep])
                rep_h, grid_h = rep[hit], grid[hit]
                if len(rep_h):
                    first = np.ones(len(rep_h), dtype=bool)
                    first[1:] = rep_h[1:] != rep_h[:-1]
                    out[m_pts[rep_h[first]]] = grid_h[first]
        return self._codes_or_none[out].tolist()

    def stats(self) -> IndexStats:
        """Lattice size and how its cells split into empty / single-grid / mixed."""
        counts = np.diff(self._cand_ptr)
        return IndexStats(
            grids=len(self._codes),
            nx=self._nx,
            ny=self._ny,
            empty_cells=int((self._state == _EMPTY).sum()),
            pure_cells=int((self._state >= 0).sum()),
            mixed_cells=int(self._mixed_slots),
            mean_candidates=float(counts.mean()) if len(counts) else 0.0,
        )
