"""GridIndex: exact point → grid answers, checked against brute-force shapely `covers`."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box, shape

from services.gridmap import GridIndex, GridMap

DEMO = Path(__file__).resolve().parents[2] / "data" / "shanghai-demo-grids.geojson"


def brute_force(grids: list[tuple[str, shapely.Geometry]], xs: np.ndarray, ys: np.ndarray) -> list[str | None]:
    """Smallest code among the grids that cover each point (bounding boxes only prefilter)."""
    codes = np.array([c for c, _ in grids], dtype=object)
    geoms = np.array([g for _, g in grids], dtype=object)
    b = shapely.bounds(geoms)
    out: list[str | None] = []
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            out.append(None)
            continue
        near = np.nonzero((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]))[0]
        pt = shapely.Point(x, y)
        hits = [codes[i] for i in near if shapely.covers(geoms[i], pt)]
        out.append(min(hits) if hits else None)
    return out


@pytest.fixture(scope="module")
def demo_grids() -> list[tuple[str, shapely.Geometry]]:
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    return [
        (f["properties"]["code"], shape(f["geometry"]))
        for f in data["features"]
        if f["properties"]["level"] == "grid"
    ]


@pytest.fixture(scope="module")
def demo_index(demo_grids: list[tuple[str, shapely.Geometry]]) -> GridIndex:
    return GridIndex.build(demo_grids)


def test_demo_index_has_every_grid(demo_index: GridIndex) -> None:
    assert len(demo_index) == 1980
    stats = demo_index.stats()
    assert stats.pure_cells > 0 and stats.mixed_cells > 0 and stats.empty_cells > 0


def test_random_points_agree_with_brute_force(demo_index: GridIndex, demo_grids) -> None:
    rng = np.random.default_rng(20261121)
    x0, y0, x1, y1 = shapely.total_bounds([g for _, g in demo_grids])
    # A little beyond the bounding box too, so some points are outside every grid's box.
    xs = rng.uniform(x0 - 0.02, x1 + 0.02, 10_000)
    ys = rng.uniform(y0 - 0.02, y1 + 0.02, 10_000)
    expected = brute_force(demo_grids, xs, ys)
    got = [demo_index.lookup(x, y) for x, y in zip(xs, ys)]
    assert got == expected
    assert demo_index.lookup_many(xs, ys) == expected
    inside = sum(e is not None for e in expected)
    assert 3_000 < inside < 9_000  # both inside and outside points were exercised


def _shared_vertices(grids, limit: int) -> list[tuple[float, float]]:
    """Vertices that appear in two or more grids' rings, exactly."""
    seen: dict[tuple[float, float], set[str]] = {}
    for code, geom in grids:
        for x, y in shapely.get_coordinates(geom):
            seen.setdefault((float(x), float(y)), set()).add(code)
    shared = [p for p, owners in seen.items() if len(owners) >= 2]
    return sorted(shared)[:limit]


def test_shared_vertices_and_edges_resolve_to_a_covering_grid(demo_index: GridIndex, demo_grids) -> None:
    vertices = _shared_vertices(demo_grids, 3000)
    assert len(vertices) > 1000
    xs = np.array([p[0] for p in vertices])
    ys = np.array([p[1] for p in vertices])
    expected = brute_force(demo_grids, xs, ys)
    assert None not in expected  # a vertex of a grid is covered by it
    assert [demo_index.lookup(x, y) for x, y in zip(xs, ys)] == expected
    assert demo_index.lookup_many(xs, ys) == expected
    # Points along shared edges: midpoints and other fractions of the segment between two
    # consecutive shared vertices of one ring (on the edge or within rounding of it).
    pts = []
    for _, geom in demo_grids[:300]:
        ring = shapely.get_coordinates(geom.exterior)
        for (ax, ay), (bx, by) in zip(ring[:-1], ring[1:]):
            for t in (0.5, 0.25, 1 / 3):
                pts.append((ax + t * (bx - ax), ay + t * (by - ay)))
    ex = np.array([p[0] for p in pts])
    ey = np.array([p[1] for p in pts])
    expected = brute_force(demo_grids, ex, ey)
    assert [demo_index.lookup(x, y) for x, y in zip(ex, ey)] == expected
    assert demo_index.lookup_many(ex, ey) == expected


def test_vertex_on_the_outer_boundary_belongs_to_its_grid(demo_index: GridIndex, demo_grids) -> None:
    union = shapely.union_all([g for _, g in demo_grids])
    outer = shapely.get_coordinates(union.geoms[0].exterior if union.geom_type == "MultiPolygon" else union.exterior)
    for x, y in outer[:50]:
        code = demo_index.lookup(float(x), float(y))
        assert code is not None
        assert dict(demo_grids)[code].covers(shapely.Point(x, y))


def test_outside_and_non_finite_points_give_none(demo_index: GridIndex) -> None:
    nan, inf = float("nan"), float("inf")
    points = [
        (0.0, 0.0), (121.5, 40.0), (100.0, 31.2), (180.0, 90.0), (-180.0, -90.0),
        (121.0, 31.7),  # in the bounding box, in the water between mainland and Chongming
        (nan, 31.2), (121.5, nan), (nan, nan), (inf, 31.2), (121.5, -inf), (inf, inf), (-inf, nan),
        (1e308, -1e308),
    ]
    for x, y in points:
        assert demo_index.lookup(x, y) is None, (x, y)
    xs, ys = zip(*points)
    assert demo_index.lookup_many(xs, ys) == [None] * len(points)


def test_lookup_accepts_number_types(demo_index: GridIndex) -> None:
    x, y = 121.4737, 31.2304  # People's Square
    code = demo_index.lookup(x, y)
    assert code is not None and code.startswith("SH-")
    assert demo_index.lookup(np.float64(x), np.float32(y)) == demo_index.lookup(x, float(np.float32(y)))
    assert demo_index.lookup(121, 31) == demo_index.lookup(121.0, 31.0)


def test_lookup_many_shapes(demo_index: GridIndex) -> None:
    assert demo_index.lookup_many([], []) == []
    with pytest.raises(ValueError):
        demo_index.lookup_many([121.4, 121.5], [31.2])
    x, y = 121.4737, 31.2304
    assert demo_index.lookup_many(np.array([x]), np.array([y])) == [demo_index.lookup(x, y)]


def test_empty_index() -> None:
    index = GridIndex.build([])
    assert len(index) == 0
    assert index.lookup(121.5, 31.2) is None
    assert index.lookup_many([121.5, float("nan")], [31.2, 0.0]) == [None, None]


def test_duplicate_code_and_bad_geometry_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        GridIndex.build([("A", box(0, 0, 1, 1)), ("A", box(1, 0, 2, 1))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely warns about the NaN itself
        nan_polygon = Polygon([(0, 0), (1, 0), (float("nan"), 1)])
    with pytest.raises(ValueError, match="non-finite"):
        GridIndex.build([("A", nan_polygon)])
    with pytest.raises(ValueError, match="geometry"):
        GridIndex.build([("A", None)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="not a string"):
        GridIndex.build([(7, box(0, 0, 1, 1))])  # type: ignore[list-item]


def test_codes_come_back_as_plain_strings() -> None:
    class Code(str):
        pass

    index = GridIndex.build([(Code("A"), box(0, 0, 1, 1)), (Code("B"), box(1, 0, 2, 1))], cells_per_grid=0.01)
    assert type(index.lookup(0.5, 0.5)) is str and index.lookup(0.5, 0.5) == "A"
    assert index.lookup(1.0, 0.5) == "A" and index.lookup(1.5, 0.5) == "B"
    assert index.codes == ["A", "B"]


def test_ties_go_to_the_smallest_code_whatever_the_input_order() -> None:
    # B and A overlap on [1, 2] x [0, 1]; C touches A only along x = 3 and at the corner (3, 1).
    grids = [("C", box(3, 0, 4, 1)), ("B", box(0, 0, 2, 1)), ("A", box(1, 0, 3, 1))]
    index = GridIndex.build(grids, cells_per_grid=1)
    assert index.lookup(0.5, 0.5) == "B"
    assert index.lookup(1.5, 0.5) == "A"  # overlap
    assert index.lookup(1.0, 0.5) == "A"  # A's edge inside B
    assert index.lookup(2.0, 0.5) == "A"
    assert index.lookup(3.0, 0.5) == "A"  # shared edge A|C
    assert index.lookup(3.0, 1.0) == "A"  # shared corner
    assert index.lookup(4.0, 1.0) == "C"  # outer corner
    assert index.lookup(4.0 + 1e-12, 1.0) is None
    assert index.lookup(0.0, 0.0) == "B"
    assert index.lookup(2.5, 1.0 + 1e-12) is None


def test_multipolygon_and_hole() -> None:
    ring = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]])
    islands = shapely.MultiPolygon([box(10, 10, 11, 11), box(12, 10, 13, 11)])
    index = GridIndex.build([("R", ring), ("I", islands), ("H", box(1, 1, 3, 3))])
    assert index.lookup(0.5, 0.5) == "R"
    assert index.lookup(2, 2) == "H"
    assert index.lookup(1, 2) == "H"  # hole edge is shared: H < R
    assert index.lookup(10.5, 10.5) == "I"
    assert index.lookup(11.5, 10.5) is None
    assert index.lookup(13, 11) == "I"


def test_tuning_does_not_change_answers(demo_grids) -> None:
    grids = demo_grids[:200]
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = shapely.total_bounds([g for _, g in grids])
    xs, ys = rng.uniform(x0, x1, 2000), rng.uniform(y0, y1, 2000)
    expected = brute_force(grids, xs, ys)
    for cells_per_grid, max_cells in ((0.01, 10), (1, 1_000), (200, 4_000_000)):
        index = GridIndex.build(grids, cells_per_grid=cells_per_grid, max_cells=max_cells)
        assert [index.lookup(x, y) for x, y in zip(xs, ys)] == expected
        assert index.lookup_many(xs, ys) == expected


def test_grid_map_swaps_index(demo_index: GridIndex) -> None:
    grid_map = GridMap()
    assert grid_map.version == 0 and grid_map.lookup(121.4737, 31.2304) is None
    assert grid_map.replace(demo_index) == 1
    assert grid_map.index is demo_index
    assert grid_map.lookup(121.4737, 31.2304) == demo_index.lookup(121.4737, 31.2304)
    assert grid_map.lookup_many([121.4737], [31.2304]) == [demo_index.lookup(121.4737, 31.2304)]


# --- property test on small synthetic maps ------------------------------------------------
# Coordinates on a coarse lattice of quarters so that shared edges, shared vertices, overlaps
# and points exactly on boundaries are common, plus arbitrary floats for the rest.

_coord = st.integers(min_value=0, max_value=16).map(lambda v: v / 4)


@st.composite
def _shapes(draw: st.DrawFn) -> shapely.Geometry:
    kind = draw(st.sampled_from(["rect", "tri"]))
    if kind == "rect":
        xa, xb = sorted(draw(st.lists(_coord, min_size=2, max_size=2, unique=True)))
        ya, yb = sorted(draw(st.lists(_coord, min_size=2, max_size=2, unique=True)))
        return box(xa, ya, xb, yb)
    pts = draw(st.lists(st.tuples(_coord, _coord), min_size=3, max_size=3, unique=True))
    tri = Polygon(pts)
    if tri.area == 0:
        return box(0, 0, 0.25, 0.25)
    return tri


_maps = st.lists(_shapes(), min_size=1, max_size=8).map(
    lambda shapes: [(f"G{i:02d}", g) for i, g in enumerate(shapes)]
)
_point_coord = st.one_of(_coord, st.integers(0, 32).map(lambda v: v / 8), st.floats(-0.5, 4.5, allow_nan=False))
_points = st.lists(st.tuples(_point_coord, _point_coord), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids=_maps, points=_points, cells_per_grid=st.sampled_from([0.5, 4.0, 64.0]), shuffle=st.randoms())
def test_synthetic_maps_agree_with_brute_force(grids, points, cells_per_grid, shuffle) -> None:
    shuffled = list(grids)
    shuffle.shuffle(shuffled)
    index = GridIndex.build(shuffled, cells_per_grid=cells_per_grid)
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    expected = brute_force(grids, xs, ys)
    assert [index.lookup(x, y) for x, y in zip(xs, ys)] == expected
    assert index.lookup_many(xs, ys) == expected
