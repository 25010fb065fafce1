"""CPU per machine case of each part of intake, in one thread of one process (no contention, no HTTP client),
after the warm-up and the garbage collector's start-up freeze that `onegrid serve` does (onegrid/heap.py):

1. the intake service (`intake_batch.intake_events_once`: the key's record, the case, the answer, for
   `--intake-batch` events per transaction as the server's group commit writes them), for `--cases` new
   camera cases over random grids, the dispatcher not running;
2. the dispatcher (`dispatcher.dispatch_pending`) offering those cases in batches of `--batch`;
3. the API app itself (routing, middlewares, key check, validation) for as many `POST /api/v1/cases`
   called straight through ASGI, with the intake service replaced by a stored answer.

The three add up to a floor for `bench/intake.py`'s server CPU per case, which also pays for uvicorn,
thread hand-offs and the GIL. `--profile DIR` writes cProfile files of parts 1 and 2 there.

    .venv/bin/python bench/intake_parts.py                         # SQLite, 1,000 cases
    .venv/bin/python bench/intake_parts.py --store postgresql --profile /tmp/parts
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import random
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intake import CATEGORIES, PG_ADMIN  # noqa: E402
from bench.seed import seed_store  # noqa: E402
from models.tables import CaseSource  # noqa: E402
from onegrid import heap  # noqa: E402
from onegrid.app import build  # noqa: E402
from onegrid.settings import Settings  # noqa: E402
from services import dispatcher  # noqa: E402
from services import intake_machine as intake  # noqa: E402
from services.api_keys import authenticate  # noqa: E402
from services.case_commands import CaseOutcome  # noqa: E402
from services.intake_batch import KeyedEvent, intake_events_once  # noqa: E402


@contextmanager
def cpu(label: str, n: int, profile: Path | None, engine: sa.Engine | None = None):
    """Print the CPU per case of the block and, given the store's `engine`, the statements sent to it per
    case (an executemany counts once): the figure that machine load does not move."""
    statements = [0]

    def count(*_args: object) -> None:
        statements[0] += 1

    if engine is not None:
        sa.event.listen(engine, "before_cursor_execute", count)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    start = time.process_time()
    yield
    spent = time.process_time() - start
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile / f"{label}.prof")
    if engine is not None:
        sa.event.remove(engine, "before_cursor_execute", count)
    sent = f", {statements[0] / n:5.2f} statements per case" if engine is not None else ""
    print(f"{label:<10} {spent / n * 1000:6.2f} ms CPU per case{sent}")


def report(i: int, points: list[tuple[float, float]]) -> intake.MachineReport:
    lat, lon = random.choice(points)
    return intake.MachineReport(source=CaseSource.CAMERA, event_id=f"ev-{i}", device_id=f"cam-{i}",
                                category_code=random.choice(CATEGORIES), lat=lat, lon=lon, description="bench",
                                address=None, media_urls=[], drill=False)


def answer(result: object) -> JSONResponse:
    if not isinstance(result, CaseOutcome):
        raise SystemExit(f"intake refused a bench case: {result!r}")
    return JSONResponse({"outcome": result.outcome}, status_code=201)


async def api_part(app, token: str, points: list[tuple[float, float]], n: int) -> None:  # noqa: ANN001
    stored = JSONResponse({"outcome": "created"}, status_code=201)
    writer = app.api.state.intake_writer

    async def write(event: object) -> JSONResponse:
        return stored

    real, writer.write = writer.write, write
    try:
        async def one(i: int) -> None:
            lat, lon = random.choice(points)
            body = json.dumps({"source": "camera", "source_event_id": f"api-{i}", "device_id": f"cam-{i}",
                               "category_code": random.choice(CATEGORIES), "lat": lat, "lon": lon}).encode()
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/api/v1/cases", "raw_path": b"/api/v1/cases", "query_string": b"",
                     "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
                     "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                                 (b"content-length", str(len(body)).encode()),
                                 (b"authorization", f"Bearer {token}".encode()),
                                 (b"idempotency-key", uuid.uuid4().hex.encode())]}
            sent: list[dict] = []

            async def receive() -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict) -> None:
                sent.append(message)

            await app.api(scope, receive, send)
            if sent[0]["status"] != 201:
                raise SystemExit(f"the API answered {sent[0]['status']}")

        for i in range(100):
            await one(i)
        with cpu("api", n, None):
            for i in range(n):
                await one(i)
    finally:
        writer.write = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16, help="cases per dispatcher batch")
    parser.add_argument("--intake-batch", type=int, default=16,
                        help="cases per intake transaction (1: one each, as before the group commit)")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", type=Path, help="write intake.prof and dispatch.prof here")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="onegrid-parts-"))
    if args.store == "sqlite":
        run(f"sqlite:///{data_dir / 'onegrid.sqlite3'}", data_dir, args)
        return
    name = f"onegrid_parts_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        run(sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), data_dir, args)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, data_dir: Path, args: argparse.Namespace) -> None:
    token, points = seed_store(url, data_dir, workers=300)
    app = build(Settings(_env_file=None, database_url=url, data_dir=data_dir, sandbox="off", bot_token=None,
                         api_default_rate_per_minute=10**9))
    ctx = app.ctx
    ctx.grid_map.rebuild(ctx.sessions)
    ctx.on_registered = lambda: None  # registered cases wait in the queue for part 2
    principal = authenticate(ctx, token=token)

    def intake(first: int, n: int) -> None:
        """Cases first..first+n, `--intake-batch` per transaction as the server's group commit writes them."""
        for start in range(first, first + n, args.intake_batch):
            size = min(args.intake_batch, first + n - start)
            answers = intake_events_once(ctx, [
                KeyedEvent(principal=principal, report=report(i, points), key=uuid.uuid4().hex, fingerprint="bench",
                           answer=answer) for i in range(start, start + size)])
            if any(isinstance(a, BaseException) for a in answers):
                raise SystemExit(f"intake failed: {answers}")

    intake(10**6, 100)  # warm-up: caches, compiled statements
    while dispatcher.dispatch_pending(ctx, limit=args.batch):
        pass
    heap.settle()  # as `onegrid serve` does after its start: collections then walk only what came after
    print(f"{args.store}: {args.cases} new camera cases, one thread, {args.intake_batch} per intake transaction")
    with cpu("intake", args.cases, args.profile, app.engine):
        intake(0, args.cases)
    with cpu("dispatch", args.cases, args.profile, app.engine):
        taken = 0
        while (batch := dispatcher.dispatch_pending(ctx, limit=args.batch)):
            taken += batch
    if taken != args.cases:
        raise SystemExit(f"the dispatcher took {taken} cases, not {args.cases}")
    asyncio.run(api_part(app, token, points, args.cases))
    app.engine.dispose()


if __name__ == "__main__":
    main()
