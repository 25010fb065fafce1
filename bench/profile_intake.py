"""Where an intake request's time goes: cProfile around N `POST /api/v1/cases` through the app in-process.

The app runs as `onegrid serve` builds it (its dispatcher loop too), over httpx's ASGI transport, so the
profile holds the route, the key check, the idempotency layer, the intake service and the dispatcher.

    .venv/bin/python bench/profile_intake.py --cases 300 [--store postgresql] [--sort tottime]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
import yappi  # profiles every thread: the services run in worker threads (asyncio.to_thread)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intake import CATEGORIES, PG_ADMIN  # noqa: E402
from bench.seed import seed_store  # noqa: E402
from onegrid.app import build, start_background, stop_background  # noqa: E402
from onegrid.settings import Settings  # noqa: E402


async def run(url: str, data_dir: Path, n: int, sort: str, limit: int) -> None:
    token, points = seed_store(url, data_dir, workers=300)
    app = build(Settings(_env_file=None, database_url=url, data_dir=data_dir, sandbox="off"))
    await start_background(app)
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        async def one(i: int) -> None:
            lat, lon = random.choice(points)
            r = await client.post("/api/v1/cases", headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                                  json={"source": "camera", "source_event_id": f"p{i}", "device_id": f"c{i}",
                                        "category_code": random.choice(CATEGORIES), "lat": lat, "lon": lon})
            assert r.status_code == 201, r.text

        for i in range(20):
            await one(-i - 1)
        yappi.set_clock_type("cpu")
        t0 = time.process_time()
        yappi.start()
        for i in range(n):
            await one(i)
        for _ in range(200):  # let the dispatcher finish what these cases queued, inside the profile
            with app.engine.connect() as c:
                if c.execute(sa.text("SELECT count(*) FROM pending_dispatch")).scalar_one() == 0:
                    break
            await asyncio.sleep(0.05)
        yappi.stop()
        cpu = (time.process_time() - t0) / n * 1000
    await stop_background(app)
    app.engine.dispose()
    print(f"{url.split(':', 1)[0]}: {n} cases, {cpu:.2f} ms CPU per case in this process (profiler on)")
    stats = yappi.get_func_stats()
    stats.sort(sort, "desc")
    print(f"{'calls':>8} {'own ms/case':>12} {'total ms/case':>14}  function")
    for row in list(stats)[:limit]:
        name = f"{Path(row.module).name}:{row.lineno} {row.name}"
        print(f"{row.ncall:>8} {row.tsub / n * 1000:>12.3f} {row.ttot / n * 1000:>14.3f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sort", default="ttot", choices=["ttot", "tsub", "ncall"])
    parser.add_argument("--limit", type=int, default=45)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="onegrid-prof-"))
    if args.store == "sqlite":
        asyncio.run(run(f"sqlite:///{tmp / 'p.sqlite3'}", tmp, args.cases, args.sort, args.limit))
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"onegrid_prof_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        asyncio.run(run(url, tmp, args.cases, args.sort, args.limit))
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
