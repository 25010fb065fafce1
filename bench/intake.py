"""Machine intake over HTTP: a real `onegrid serve` process on one core, the load client on the other.

For each store (SQLite in WAL mode, then PostgreSQL when one answers):
1. a fresh store with the demo map, the catalogue, `--workers` workers on duty in random grids, one
   supervisor per district and an intake key (set up before the server starts);
2. `onegrid serve` started pinned to core 0 (`taskset -c 0`), this client pinned to core 1;
3. closed loop: `--warmup` then `--cases` new camera cases over random grids in a few categories,
   each with its own Idempotency-Key, `--concurrency` requests in flight;
4. open loops at each `--rates` for `--duration` seconds: requests leave on schedule whatever the
   earlier ones are doing, so queueing shows in the latency;
5. one request repeated with its Idempotency-Key must get the original answer;
6. the dispatcher drains (every queued case offered), then the store must hold exactly one case per
   successful 201 answer.

Prints cases/s, p50/p99, errors and the server's CPU per case (utime + stime of the server process
from /proc, divided by the answers): the figure least moved by a noisy machine.

    .venv/bin/python bench/intake.py                      # 2,000 cases, open loops at 100/s and 300/s
    .venv/bin/python bench/intake.py --stores sqlite --cases 500 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed import seed_store  # noqa: E402

PG_ADMIN = os.environ.get("ONEGRID_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CATEGORIES = ("exposed_garbage", "illegal_parking", "road_surface_damaged", "street_stall")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`onegrid serve` as a child process pinned to one core."""

    def __init__(self, url: str, data_dir: Path, core: int) -> None:
        self.port = free_port()
        env = {**os.environ, "ONEGRID_DATABASE_URL": url, "ONEGRID_DATA_DIR": str(data_dir),
               "ONEGRID_API_PORT": str(self.port), "ONEGRID_SANDBOX": "off", "ONEGRID_BOT_TOKEN": "",
               "ONEGRID_API_DEFAULT_RATE_PER_MINUTE": str(10**9), "ONEGRID_LOG_LEVEL": "WARNING"}
        env.pop("ONEGRID_BOT_TOKEN")
        exe = Path(sys.executable).parent / "onegrid"
        self.log = (data_dir / "server.log").open("w")
        self.proc = subprocess.Popen(["taskset", "-c", str(core), str(exe), "serve"], env=env, cwd=data_dir,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            try:
                async with session.get(f"{self.base}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Load:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str, points: list[tuple[float, float]]):
        self.session, self.base, self.points = session, base, points
        self.headers = {"Authorization": f"Bearer {token}"}
        self.serial = 0
        self.created: set[int] = set()
        self.failures: dict[str, int] = {}
        self.unanswered: list[tuple[str, dict]] = []  # timed out: asked again with their keys at the end

    def body(self) -> tuple[str, dict]:
        self.serial += 1
        lat, lon = random.choice(self.points)
        return uuid.uuid4().hex, {"source": "camera", "source_event_id": f"ev-{self.serial}",
                                  "device_id": f"cam-{self.serial}", "category_code": random.choice(CATEGORIES),
                                  "lat": lat, "lon": lon, "description": "bench"}

    async def post(self, key: str, body: dict) -> tuple[float, int, dict | None]:
        t = time.perf_counter()
        try:
            async with self.session.post(f"{self.base}/api/v1/cases", json=body,
                                         headers={**self.headers, "Idempotency-Key": key}) as r:
                data = await r.json() if r.status < 500 else None
                status = r.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
            self.unanswered.append((key, body))
            return time.perf_counter() - t, 0, None
        if status == 409 and (data or {}).get("code") == "idempotency_key_in_flight":
            self.unanswered.append((key, body))  # the first try is still running: ask again later
        if status != 201:
            what = f"{status} {(data or {}).get('code', '')}".strip()
            self.failures[what] = self.failures.get(what, 0) + 1
        if status == 201 and data is not None:
            self.created.add(data["case"]["id"])
        return time.perf_counter() - t, status, data

    async def settle(self) -> int:
        """Ask again, with the same Idempotency-Key, for every answer that timed out (as a real client does)."""
        asked = 0
        while self.unanswered:
            await asyncio.sleep(0.5)
            batch, self.unanswered = self.unanswered, []
            asked += len(batch)
            await asyncio.gather(*(self.post(key, body) for key, body in batch))
        return asked

    async def one(self) -> tuple[float, int]:
        key, body = self.body()
        took, status, _ = await self.post(key, body)
        return took, status

    async def closed(self, n: int, concurrency: int) -> tuple[list[float], int, float]:
        todo = iter(range(n))
        lat: list[float] = []
        errors = 0

        async def client() -> None:
            nonlocal errors
            for _ in todo:
                took, status = await self.one()
                lat.append(took)
                errors += status != 201

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return lat, errors, time.perf_counter() - t0

    async def open(self, rate: float, duration: float) -> tuple[list[float], int, float, int]:
        n = int(rate * duration)
        tasks = []
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one()))
        results = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        return [t for t, _ in results], sum(s != 201 for _, s in results), elapsed, n


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))] * 1000 if ordered else float("nan")


async def bench_store(label: str, url: str, data_dir: Path, args: argparse.Namespace) -> None:
    token, points = seed_store(url, data_dir, workers=args.workers)
    server = Server(url, data_dir, core=args.server_core)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await server.ready(session)
            load = Load(session, server.base, token, points)
            await load.closed(args.warmup, args.concurrency)
            runs = []
            for _ in range(args.repeat):  # repeats on one server: this machine's noise is ±10 % run to run
                cpu0 = server.cpu()
                lat, errors, elapsed = await load.closed(args.cases, args.concurrency)
                cpu = (server.cpu() - cpu0) / max(1, args.cases - errors) * 1000
                runs.append((args.cases / elapsed, cpu))
                print(f"{label:<10} closed loop c={args.concurrency}: {args.cases / elapsed:7.1f} cases/s, "
                      f"p50 {pct(lat, 0.5):6.1f} ms, p99 {pct(lat, 0.99):7.1f} ms, errors {errors}, "
                      f"server CPU {cpu:.2f} ms/case", flush=True)
            if len(runs) > 1:
                print(f"{label:<10} closed loop median of {len(runs)}: {statistics.median(r for r, _ in runs):7.1f} "
                      f"cases/s, server CPU {statistics.median(c for _, c in runs):.2f} ms/case", flush=True)
            key, body = load.body()  # a client retrying with the same key gets the original answer
            _, first, a = await load.post(key, body)
            _, again, b = await load.post(key, body)
            replay_ok = first == again == 201 and a == b
            for rate in args.rates:
                cpu0 = server.cpu()
                lat, errors, elapsed, n = await load.open(rate, args.duration)
                cpu = (server.cpu() - cpu0) / max(1, n) * 1000
                print(f"{label:<10} open loop {rate:5.0f}/s for {args.duration:.0f} s: achieved {n / elapsed:6.1f}/s, "
                      f"p50 {pct(lat, 0.5):6.1f} ms, p99 {pct(lat, 0.99):7.1f} ms, errors {errors}, "
                      f"server CPU {cpu:.2f} ms/case", flush=True)
            retried = await load.settle()
            drained = await wait_drained(url, args.drain_timeout)
        engine = sa.create_engine(url)
        with engine.connect() as c:
            stored = c.execute(sa.text("SELECT count(*) FROM \"case\" WHERE source = 'camera'")).scalar_one()
            offered = c.execute(sa.text("SELECT count(DISTINCT case_id) FROM case_task")).scalar_one()
        engine.dispose()
        verdict = "OK" if stored == len(load.created) and replay_ok else "MISMATCH"
        print(f"{label:<10} store check ({retried} timed-out requests asked again with their keys): "
              f"{stored} cases stored for {len(load.created)} answers 201 -> {verdict}; "
              f"idempotent replay {'same answer' if replay_ok else 'DIFFERENT'}; dispatcher drained "
              f"{'yes' if drained else 'NO'} ({offered} cases with tasks)", flush=True)
        if load.failures:
            print(f"{label:<10} failures: {load.failures}", flush=True)
    finally:
        server.stop()


async def wait_drained(url: str, timeout: float) -> bool:
    engine = sa.create_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as c:
                if c.execute(sa.text("SELECT count(*) FROM pending_dispatch")).scalar_one() == 0:
                    return True
            await asyncio.sleep(0.2)
        return False
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="closed loops in a row, each --cases; prints the median")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rates", type=float, nargs="*", default=[100.0, 300.0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=300, help="workers on duty in random grids")
    parser.add_argument("--stores", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.client_core})
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; server on core {args.server_core}, "
          f"client on core {args.client_core}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="onegrid-bench-"))
    try:
        if "sqlite" in args.stores:
            (tmp / "sqlite").mkdir()
            asyncio.run(bench_store("sqlite", f"sqlite:///{tmp / 'sqlite' / 'bench.sqlite3'}", tmp / "sqlite", args))
        if "postgresql" in args.stores:
            try:
                admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
                name = f"onegrid_bench_{uuid.uuid4().hex[:8]}"
                with admin.connect() as c:
                    c.execute(sa.text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:  # noqa: BLE001
                print(f"postgresql skipped: no server answered ({type(exc).__name__})")
                return
            try:
                url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
                (tmp / "pg").mkdir()
                asyncio.run(bench_store("postgresql", url, tmp / "pg", args))
            finally:
                with admin.connect() as c:
                    c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
