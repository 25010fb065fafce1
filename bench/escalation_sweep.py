"""Benchmark: the escalation sweep's find-and-claim over 1,000,000 open cases, 10,000 of them due.

Prints figures; asserts nothing about time. Usage:

    .venv/bin/python bench/escalation_sweep.py [--cases 1000000] [--due 10000] [--postgres URL] [--sqlite PATH]

For each store it times (median of 5 runs, each in a transaction that is rolled back so every run
sees the same 10,000 due cases):
- claim: `services.escalation.claim_due` for all due cases (PostgreSQL: FOR UPDATE SKIP LOCKED),
  plus moving their `next_escalation_at` on (what the sweep writes besides pings);
- lock: the claim query alone, without moving `next_escalation_at`;
- empty: the same query when nothing is due (the cost of every idle tick).
Sending and rendering pings are excluded, as the issue asks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.db import make_engine, make_session_factory, upgrade  # noqa: E402
from services.escalation import claim_due  # noqa: E402

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def populate(engine: sa.Engine, cases: int, due: int) -> None:
    """`cases` open cases; the first `due` have next_escalation_at in the past, the rest in the future."""
    future = (NOW + timedelta(days=3)).isoformat()
    past = (NOW - timedelta(minutes=5)).isoformat()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(
                "INSERT INTO \"case\" (number, source, category_code, description, lat, lon, media_urls, status, "
                "report_count, created_at, updated_at, version, next_escalation_at, escalation_round) "
                "SELECT 'B-' || g, 'resident', 'exposed_garbage', '', 31.2, 121.4, '[]', 'dispatched', 1, "
                ":now, :now, 1, CASE WHEN g <= :due THEN CAST(:past AS timestamptz) "
                "ELSE CAST(:future AS timestamptz) + (g || ' seconds')::interval END, 0 "
                "FROM generate_series(1, :n) AS g"), {"now": NOW, "due": due, "past": past, "future": future,
                                                      "n": cases})
            conn.execute(sa.text('ANALYZE "case"'))
        else:
            conn.execute(sa.text(
                "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :n) "
                "INSERT INTO \"case\" (number, source, category_code, description, lat, lon, media_urls, status, "
                "report_count, created_at, updated_at, version, next_escalation_at, escalation_round) "
                "SELECT 'B-' || i, 'resident', 'exposed_garbage', '', 31.2, 121.4, '[]', 'dispatched', 1, "
                ":now, :now, 1, CASE WHEN i <= :due THEN :past_s ELSE :future_s END, 0 FROM g"),
                {"n": cases, "due": due, "now": NOW.strftime("%Y-%m-%d %H:%M:%S.%f"),
                 "past_s": (NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                 "future_s": (NOW + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S.%f")})
            conn.execute(sa.text("ANALYZE"))


def timed(sessions, *, now: datetime, limit: int, move: bool) -> tuple[float, int]:  # noqa: ANN001
    from models.tables import Case

    with sessions() as session:
        session.begin()
        start = time.perf_counter()
        ids = claim_due(session, now=now, limit=limit)
        if move and ids:
            session.execute(sa.update(Case).where(Case.id.in_(ids)).values(next_escalation_at=None))
        elapsed = time.perf_counter() - start
        session.rollback()
    return elapsed * 1000, len(ids)


def run(label: str, url: str, cases: int, due: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    populate(engine, cases, due)
    print(f"{label}: {cases:,} open cases stored in {time.perf_counter() - t0:.1f} s")
    sessions = make_session_factory(engine)
    claims, locks, empties = [], [], []
    for _ in range(5):
        ms, n = timed(sessions, now=NOW, limit=due, move=True)
        claims.append(ms)
        assert n == due, n
        ms, n = timed(sessions, now=NOW, limit=due, move=False)
        locks.append(ms)
        ms, n = timed(sessions, now=NOW - timedelta(hours=1), limit=500, move=False)
        empties.append(ms)
        assert n == 0
    print(f"{label}: find-and-claim {due:,} due cases: median {statistics.median(claims):.1f} ms "
          f"(min {min(claims):.1f}, max {max(claims):.1f})")
    print(f"{label}: find-and-lock only (no update) {due:,} due cases: median {statistics.median(locks):.1f} ms")
    print(f"{label}: empty sweep query: median {statistics.median(empties):.2f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--postgres", default=None, help="URL of an EMPTY PostgreSQL database")
    parser.add_argument("--sqlite", default=None, help="path of a new SQLite file (default: a temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.sqlite or str(Path(tmp) / "bench.sqlite3")
        run("SQLite", f"sqlite:///{path}", args.cases, args.due)
    if args.postgres:
        run("PostgreSQL", args.postgres, args.cases, args.due)


if __name__ == "__main__":
    main()
