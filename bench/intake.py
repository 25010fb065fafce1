"""Machine intake throughput: POST /api/v1/cases end to end, on SQLite and PostgreSQL.

Each request goes through the real app in-process (httpx ASGI transport): validation, key and
scope check, grid lookup, claim, case + events + outbox (+ notifications) rows, commit.

Prints, per store:
- closed loop: cases/s with one client sending back to back;
- open loop: p50/p99 latency when requests arrive at a fixed rate (default 50/s), whatever the
  previous ones are doing, so queueing shows in the latency;
- the raw SQLite ceiling: the same rows (case, 2 events, 2 outbox, claim, machine row) inserted
  with plain SQL in one transaction per case, measured in the same run, as the reference.

    .venv/bin/python bench/intake.py --cases 500 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from onegrid.app import build  # noqa: E402
from onegrid.settings import Settings  # noqa: E402
from services.api_keys import create_key  # noqa: E402
from services.areas import import_geojson  # noqa: E402
from services.catalogue import apply_catalogue, load_catalogue  # noqa: E402
from services.db import upgrade  # noqa: E402

PG_ADMIN = os.environ.get("ONEGRID_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def points(doc: dict, n: int) -> list[tuple[float, float]]:
    from shapely.geometry import shape

    grids = [shape(f["geometry"]).representative_point() for f in doc["features"] if f["properties"]["level"] == "grid"]
    return [(grids[i % len(grids)].y, grids[i % len(grids)].x) for i in range(n)]


def make_app(url: str, data_dir: Path):  # noqa: ANN201
    upgrade(url)
    app = build(Settings(_env_file=None, database_url=url, data_dir=data_dir, api_default_rate_per_minute=10**9))
    doc = json.loads((ROOT / "data" / "shanghai-demo-grids.geojson").read_text(encoding="utf-8"))
    import_geojson(app.ctx.sessions, doc, now=app.ctx.clock.now())
    apply_catalogue(app.ctx.sessions, load_catalogue())
    app.ctx.grid_map.rebuild(app.ctx.sessions)
    _, token = create_key(app.ctx, name="bench", scopes=["intake"])
    return app, token, doc


async def run(url: str, data_dir: Path, n: int, rate: float) -> dict[str, float]:
    app, token, doc = make_app(url, data_dir)
    pts = points(doc, 2 * n)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api), base_url="http://bench") as client:
        async def one(i: int) -> float:
            lat, lon = pts[i]
            body = {"source": "camera", "source_event_id": f"e{i}", "device_id": f"cam-{i}",
                    "category_code": "exposed_garbage", "lat": lat, "lon": lon}
            t = time.perf_counter()
            r = await client.post("/api/v1/cases", json=body, headers=headers)
            assert r.status_code == 201, r.text
            return time.perf_counter() - t

        t0 = time.perf_counter()
        for i in range(n):
            await one(i)
        closed = n / (time.perf_counter() - t0)

        tasks = []
        start = time.perf_counter()
        for i in range(n, 2 * n):
            due = start + (i - n) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        lat = sorted(await asyncio.gather(*tasks))
        achieved = n / (time.perf_counter() - start)
    app.engine.dispose()
    return {"closed_cps": closed, "open_rate": rate, "open_achieved": achieved,
            "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000}


def raw_sqlite(path: Path, n: int) -> float:
    """The same rows with plain sqlite3, one transaction per case (WAL, synchronous=NORMAL)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    now = "2026-11-21 02:00:00+00:00"
    t0 = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        cur = con.execute(
            "INSERT INTO \"case\" (number, source, source_event_id, category_code, description, lat, lon, media_urls,"
            " grid_code, status, report_count, created_at, updated_at, version) VALUES"
            " (?, 'camera', ?, 'exposed_garbage', '', 31.2, 121.4, '[]', 'g', 'registered', 1, ?, ?, 2)",
            (f"RAW-{i}", f"raw/{i}", now, now))
        cid = cur.lastrowid
        for a, f, t in (("report", None, "reported"), ("register", "reported", "registered")):
            con.execute("INSERT INTO case_event (case_id, actor_role, action, from_status, to_status, at)"
                        " VALUES (?, 'system', ?, ?, ?, ?)", (cid, a, f, t, now))
            con.execute("INSERT INTO outbox (case_id, topic, payload, status, attempts, next_attempt_at, created_at)"
                        " VALUES (?, ?, '{}', 'pending', 0, ?, ?)", (cid, f"case.{a}", now, now))
        con.execute("INSERT INTO intake_claim (source, source_ref, kind, case_id, outcome, created_at)"
                    " VALUES ('camera', ?, 'report', ?, 'created', ?)", (f"raw/{i}", cid, now))
        con.execute("INSERT INTO machine_case (case_id, source, device_id, category_code, lat, lon, events,"
                    " first_seen_at, last_seen_at, clear_pending) VALUES (?, 'camera', '', 'exposed_garbage',"
                    " 31.2, 121.4, 1, ?, ?, 0)", (cid, now, now))
        con.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    con.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="onegrid-bench-"))
    try:
        path = tmp / "bench.sqlite3"
        result = asyncio.run(run(f"sqlite:///{path}", tmp, args.cases, args.rate))
        print(f"sqlite     closed loop {result['closed_cps']:.0f} cases/s; open loop at {args.rate:.0f}/s "
              f"(achieved {result['open_achieved']:.1f}/s): p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
        print(f"sqlite raw ceiling, same rows in plain SQL: {raw_sqlite(path, args.cases * 4):.0f} cases/s")
        try:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
            name = f"onegrid_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001
            print(f"postgresql skipped: {type(exc).__name__}")
            return
        try:
            url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
            result = asyncio.run(run(url, tmp, args.cases, args.rate))
            print(f"postgresql closed loop {result['closed_cps']:.0f} cases/s; open loop at {args.rate:.0f}/s "
                  f"(achieved {result['open_achieved']:.1f}/s): p50 {result['p50_ms']:.1f} ms, "
                  f"p99 {result['p99_ms']:.1f} ms")
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
