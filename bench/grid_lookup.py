#!/usr/bin/env python3
"""Benchmark the point → grid index (services/gridmap.py).

    .venv/bin/python bench/grid_lookup.py --grids 50000

Makes a synthetic Shanghai map with bench/make_grids.py (cached in bench/out/), builds a
GridIndex from its grids and prints: build time, memory, single-point `lookup` calls per
second (one thread, random points over the map's bounding box, and only those that fall in a
grid), `lookup_many` points per second, and a per-call STRtree query for comparison.
It prints figures only and asserts nothing about them; it does check that `lookup` and
`lookup_many` gave the same answers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.gridmap import DEFAULT_CELLS_PER_GRID, GridIndex  # noqa: E402

OUT = ROOT / "bench" / "out"


def map_file(grids: int, seed: int) -> Path:
    """The generated map, made once and then reused from bench/out/."""
    path = OUT / f"grids-{grids}-seed{seed}.geojson"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "make_grids.py"),
                 "--grids", str(grids), "--seed", str(seed)],
                stdout=out, check=True,
            )
        tmp.replace(path)
    return path


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        return 0


def release_free_heap() -> None:
    """Hand freed C heap back to the OS (glibc), so RSS shows what is still in use."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--grids", type=int, default=50_000, help="about how many grids (make_grids.py --grids)")
    ap.add_argument("--seed", type=int, default=20201121, help="map seed (make_grids.py --seed)")
    ap.add_argument("--points", type=int, default=1_000_000, help="random points to look up")
    ap.add_argument("--cells-per-grid", type=float, default=DEFAULT_CELLS_PER_GRID)
    args = ap.parse_args()

    print(f"python {platform.python_version()}, shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), "
          f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    t = time.perf_counter()
    path = map_file(args.grids, args.seed)
    print(f"map: {path.relative_to(ROOT)} ({mib(path.stat().st_size)}, ready in {time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    doc = json.loads(path.read_text(encoding="utf-8"))
    grids = [
        (f["properties"]["code"], shape(f["geometry"]))
        for f in doc["features"]
        if f["properties"]["level"] == "grid"
    ]
    del doc
    print(f"parsed {len(grids)} grids in {time.perf_counter() - t:.2f} s")

    release_free_heap()
    rss0 = rss_bytes()
    t = time.perf_counter()
    index = GridIndex.build(grids, cells_per_grid=args.cells_per_grid)
    build_s = time.perf_counter() - t
    release_free_heap()
    rss1 = rss_bytes()
    s = index.stats()
    print(f"build: {build_s:.2f} s; lattice {s.nx} x {s.ny} = {s.cells:,} cells: "
          f"{s.pure_cells:,} one-grid, {s.mixed_cells:,} mixed (mean {s.mean_candidates:.2f} candidates), "
          f"{s.empty_cells:,} empty")

    # Memory: tracemalloc sees Python objects and numpy arrays, not GEOS's own allocations
    # (prepared-geometry indexes); the RSS growth over the first build includes those.
    release_free_heap()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    again = GridIndex.build(grids, cells_per_grid=args.cells_per_grid)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del again
    print(f"memory: index keeps {mib(kept - base)} of Python/numpy objects (peak during build {mib(peak - base)}); "
          f"process RSS grew {mib(rss1 - rss0)} over the first build "
          f"(after returning freed heap; includes GEOS prepared-geometry indexes)")

    rng = np.random.default_rng(12345)
    x0, y0, x1, y1 = shapely.total_bounds([g for _, g in grids])
    xs = rng.uniform(x0, x1, args.points)
    ys = rng.uniform(y0, y1, args.points)
    xl, yl = xs.tolist(), ys.tolist()

    lookup = index.lookup
    for x, y in zip(xl[:10_000], yl[:10_000]):  # warm up
        lookup(x, y)
    t = time.perf_counter()
    single = [lookup(x, y) for x, y in zip(xl, yl)]
    dt = time.perf_counter() - t
    hits = sum(c is not None for c in single)
    print(f"lookup, {args.points:,} points over the bounding box ({hits / args.points:.1%} in a grid): "
          f"{args.points / dt:,.0f} calls/s ({dt / args.points * 1e6:.2f} µs each)")

    inside = [(x, y) for x, y, c in zip(xl, yl, single) if c is not None]
    t = time.perf_counter()
    for x, y in inside:
        lookup(x, y)
    dt = time.perf_counter() - t
    print(f"lookup, the {len(inside):,} points that are in a grid: {len(inside) / dt:,.0f} calls/s "
          f"({dt / len(inside) * 1e6:.2f} µs each)")

    t = time.perf_counter()
    many = index.lookup_many(xs, ys)
    dt = time.perf_counter() - t
    print(f"lookup_many, {args.points:,} points in one call: {args.points / dt:,.0f} points/s ({dt:.2f} s)")
    print(f"lookup_many == [lookup ...]: {'yes' if many == single else 'NO - BUG'}")

    # For comparison: one STRtree query per point, the plain approach.
    geoms = np.array([g for _, g in grids], dtype=object)
    tree = shapely.STRtree(geoms)
    n = min(100_000, args.points)
    t = time.perf_counter()
    for x, y in zip(xl[:n], yl[:n]):
        tree.query(shapely.Point(x, y), predicate="intersects")
    dt = time.perf_counter() - t
    print(f"baseline, STRtree.query(Point) per point: {n / dt:,.0f} calls/s")


if __name__ == "__main__":
    main()
