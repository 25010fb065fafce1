"""Upstream sync throughput: a district `onegrid serve` relays its outbox to a city `onegrid serve` over HTTP.

1. Two fresh stores (PostgreSQL databases by default, `--store sqlite` for files), each with the demo
   map and catalogue; the city has an intake key for the district, scoped to Huangpu (SH-HP).
2. The district's backlog is written before its server starts, through the case services (one
   transaction per 100 cases): `--cases` camera cases in Huangpu grids, each reported and
   registered (2 events); every 3rd dispatched, every 5th cancelled, every 7th reported again (a
   `case.repeated` event).
3. The city server starts pinned to `--city-core`, then the district server (with
   ONEGRID_UPSTREAM_URL = the city) pinned to `--district-core`; its relay drains the outbox.
4. This script polls the district's outbox every 50 ms: events/s is counted from the first row
   sent to the last (startup excluded), with each server's CPU per event over that window (utime +
   stime from /proc: the figure least moved by a noisy machine).
5. Both stores must agree case by case: the city's mirror of each district case (found by its
   number there) has the same status and the same actions in the same order.

    .venv/bin/python bench/sync.py --cases 4000
    .venv/bin/python bench/sync.py --cases 4000 --profile /tmp/sync-prof   # cProfile of both servers
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intake import PG_ADMIN, cpu_seconds, free_port  # noqa: E402
from models.lifecycle import Action, Actor, Role  # noqa: E402
from models.tables import Case, CaseSource, OutboxItem  # noqa: E402
from onegrid.clock import SystemClock  # noqa: E402
from onegrid.settings import Settings  # noqa: E402
from onegrid.wiring import make_bus  # noqa: E402
from services import cases as case_service  # noqa: E402
from services import reference  # noqa: E402
from services.api_keys import create_key  # noqa: E402
from services.areas import import_geojson  # noqa: E402
from services.catalogue import apply_catalogue, load_catalogue  # noqa: E402
from services.context import ServiceContext  # noqa: E402
from services.db import make_engine, make_session_factory, transaction, upgrade  # noqa: E402
from services.gridmap import GridMap  # noqa: E402

DEMO_MAP = ROOT / "data" / "shanghai-demo-grids.geojson"
DISPATCHER = Actor(Role.DISPATCHER)


def context(url: str, data_dir: Path) -> ServiceContext:
    engine = make_engine(url)
    ctx = ServiceContext(sessions=make_session_factory(engine), clock=SystemClock(), bus=make_bus(),
                         settings=Settings(_env_file=None, database_url=url, data_dir=data_dir))
    return ctx


def prepare(url: str, data_dir: Path) -> ServiceContext:
    upgrade(url)
    ctx = context(url, data_dir)
    import_geojson(ctx.sessions, json.loads(DEMO_MAP.read_text(encoding="utf-8")), now=ctx.clock.now())
    apply_catalogue(ctx.sessions, load_catalogue())
    ctx.grid_map = GridMap()
    ctx.grid_map.rebuild(ctx.sessions)
    return ctx


def write_backlog(ctx: ServiceContext, n: int) -> None:
    """`n` registered camera cases in Huangpu, some dispatched, cancelled or reported again."""
    from shapely.geometry import shape

    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    points = [shape(f["geometry"]).representative_point() for f in doc["features"]
              if f["properties"]["level"] == "grid" and f["properties"]["code"].startswith("SH-HP-")]
    for start in range(0, n, 100):
        with transaction(ctx.sessions) as session:
            category = reference.category(session, "exposed_garbage")
            for i in range(start, min(n, start + 100)):
                p = points[i % len(points)]
                case = case_service.register_in(
                    session, ctx, actor=Actor(Role.SYSTEM), source=CaseSource.CAMERA, category=category,
                    grid_code=ctx.grid_map.lookup(p.x, p.y), lat=p.y, lon=p.x, description=f"bench {i}",
                    address=None, source_event_id=f"e{i}", now=ctx.clock.now())
                if i % 7 == 0:  # what machine intake writes when a camera reports an open case again
                    session.execute(sa.update(Case).where(Case.id == case.id).values(report_count=2))
                    session.execute(sa.insert(OutboxItem.__table__).values(
                        case_id=case.id, topic="case.repeated", status="pending", attempts=0,
                        next_attempt_at=ctx.clock.now(), created_at=ctx.clock.now(),
                        payload={"number": case.number, "report_count": 2, "media_urls": []}))
                if i % 3 == 0:
                    case_service.apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=DISPATCHER)
                if i % 5 == 0:
                    case_service.apply_action_in(session, ctx, case, action=Action.CANCEL, actor=DISPATCHER,
                                                 note="not a public matter")


def timelines(url: str, linked: bool) -> dict[str, tuple[str, list[str]]]:
    """Case number (the district's) → (status, actions in order), read straight from the store."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            if linked:
                names = dict(c.execute(sa.text("SELECT case_id, origin_number FROM sync_link")).all())
            else:
                names = dict(c.execute(sa.text('SELECT id, number FROM "case"')).all())
            status = dict(c.execute(sa.text('SELECT id, status FROM "case"')).all())
            actions: dict[int, list[str]] = defaultdict(list)
            for case_id, action in c.execute(sa.text("SELECT case_id, action FROM case_event ORDER BY id")):
                actions[case_id].append(action)
        return {names[i]: (status[i], actions[i]) for i in names}
    finally:
        engine.dispose()


class Server:
    """`onegrid serve` as a child process pinned to one core (optionally under cProfile)."""

    def __init__(self, name: str, url: str, data_dir: Path, core: int, env: dict[str, str],
                 profile: Path | None) -> None:
        self.port = free_port()
        full = {**os.environ, "ONEGRID_DATABASE_URL": url, "ONEGRID_DATA_DIR": str(data_dir),
                "ONEGRID_API_PORT": str(self.port), "ONEGRID_SANDBOX": "off",
                "ONEGRID_API_DEFAULT_RATE_PER_MINUTE": str(10**9), "ONEGRID_LOG_LEVEL": "WARNING", **env}
        full.pop("ONEGRID_BOT_TOKEN", None)
        exe = str(Path(sys.executable).parent / "onegrid")
        command = [sys.executable, "-m", "cProfile", "-o", str(profile / f"{name}.prof"), exe] if profile else [exe]
        self.log = (data_dir / "server.log").open("w")
        self.proc = subprocess.Popen(["taskset", "-c", str(core), *command, "serve"], env=full, cwd=data_dir,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(3000):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-3000:]}")
                try:
                    async with session.get(f"{self.base}/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server did not become ready: {Path(self.log.name).read_text()[-3000:]}")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def outbox_counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = "
                                "'pending'), count(*) FROM outbox")).one()
    return row[0], row[1], row[2]


async def run(district_url: str, city_url: str, tmp: Path, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    district = prepare(district_url, tmp / "district")
    city = prepare(city_url, tmp / "city")
    _, token = create_key(city, name="Huangpu district", scopes=["intake"], area_code="SH-HP", rate_per_minute=10**9)
    write_backlog(district, args.cases)
    district.sessions.kw["bind"].dispose()
    city.sessions.kw["bind"].dispose()
    engine = sa.create_engine(district_url)
    _, _, events = outbox_counts(engine)
    print(f"{args.cases} cases, {events} events written in {time.perf_counter() - t0:.1f} s", flush=True)
    city_server = Server("city", city_url, tmp / "city", args.city_core, {"ONEGRID_INSTANCE_ID": "city"},
                         args.profile)
    district_server = None
    try:
        await city_server.ready()
        district_server = Server("district", district_url, tmp / "district", args.district_core, {
            "ONEGRID_INSTANCE_ID": "huangpu", "ONEGRID_UPSTREAM_URL": city_server.base,
            "ONEGRID_UPSTREAM_API_KEY": token, "ONEGRID_UPSTREAM_BATCH_SIZE": str(args.batch_size),
            "ONEGRID_UPSTREAM_CONCURRENCY": str(args.concurrency)}, args.profile)
        first = None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            sent, pending, _ = outbox_counts(engine)
            now = time.perf_counter()
            if first is None and sent:
                first = (now, sent, district_server.cpu(), city_server.cpu())
            if pending == 0:
                break
            await asyncio.sleep(0.05)
        end = (time.perf_counter(), district_server.cpu(), city_server.cpu())
    finally:
        if district_server is not None:
            district_server.stop()
        city_server.stop()
    sent, pending, total = outbox_counts(engine)
    with engine.connect() as c:
        dead = c.execute(sa.text("SELECT count(*) FROM outbox WHERE status = 'dead'")).scalar_one()
    engine.dispose()
    if first is None:
        print("nothing was sent: see the server logs", flush=True)
        return
    window = end[0] - first[0]
    moved = sent - first[1]
    print(f"relayed {sent} of {total} events ({pending} pending, {dead} dead); after the first answered batch "
          f"({first[1]} events), {moved} more in {window:.2f} s = {moved / window:,.0f} events/s", flush=True)
    print(f"server CPU per event: district {(end[1] - first[2]) / moved * 1000:.3f} ms, "
          f"city {(end[2] - first[3]) / moved * 1000:.3f} ms", flush=True)
    here, there = timelines(district_url, linked=False), timelines(city_url, linked=True)
    differ = [n for n in here if here[n] != there.get(n)]
    print(f"stores agree case by case: {'yes' if not differ and len(here) == len(there) else 'NO'} "
          f"({len(here)} district cases, {len(there)} mirrored in the city, {len(differ)} differ)", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=4000)
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--batch-size", type=int, default=200, help="events per batch request")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--city-core", type=int, default=0)
    parser.add_argument("--district-core", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", type=Path, default=None, help="folder for cProfile output of both servers")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; city on core {args.city_core}, "
          f"district on core {args.district_core}; batches of {args.batch_size}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="onegrid-sync-"))
    (tmp / "district").mkdir()
    (tmp / "city").mkdir()
    try:
        if args.store == "sqlite":
            asyncio.run(run(f"sqlite:///{tmp / 'district' / 'store.sqlite3'}",
                            f"sqlite:///{tmp / 'city' / 'store.sqlite3'}", tmp, args))
            return
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        names = [f"onegrid_sync_{role}_{uuid.uuid4().hex[:8]}" for role in ("district", "city")]
        with admin.connect() as c:
            for name in names:
                c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            urls = [sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
                    for name in names]
            asyncio.run(run(urls[0], urls[1], tmp, args))
        finally:
            with admin.connect() as c:
                for name in names:
                    c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
