"""Scheduled jobs once per period across every OneGrid process on one store (table `job_lease`).

Each process's scheduler ticks every job; `run_exclusive` lets a tick run the job only when it
takes the job's lease, by a conditional INSERT/UPDATE that one transaction at a time can win.

What callers may rely on:
- Two processes ticking the same job at the same moment: exactly one runs it (PostgreSQL re-checks
  the UPDATE's condition after the other's commit; SQLite serialises writers).
- After a run, nobody starts the job again until its period is over (`period` less a small slack
  for timer jitter), whichever process ticks first; so an interval job runs about once per period
  in the whole deployment, not once per process.
- A run holds the lease for `hold` (at least the period): a process that dies mid-run blocks the
  job for at most that long, then any other process takes it up.
- A job that raises frees its lease at once (the next tick anywhere retries); the error is kept
  in `last_error` and raised to the caller.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa

from models.scale import JobLease
from services.context import ServiceContext
from services.db import insert_unless_exists, transaction

T = TypeVar("T")

TABLE = JobLease.__table__


def process_name() -> str:
    """A name for this process in leases: host, pid and a random part (a restarted pid is another holder)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _slack(period: timedelta) -> timedelta:
    return min(period * 0.2, timedelta(seconds=2))


def take(ctx: ServiceContext, name: str, holder: str, *, hold: timedelta) -> datetime | None:
    """Take the lease of job `name` for `hold` if it is free; returns the start time, or None."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        created = insert_unless_exists(session, TABLE, dict(name=name, holder=holder, lease_until=now + hold,
                                                            started_at=now, runs=0),
                                       unique=["name"], returning=TABLE.c.name)
        if created is not None:
            return now
        won = session.execute(
            sa.update(TABLE).where(TABLE.c.name == name, TABLE.c.lease_until <= now)
            .values(holder=holder, lease_until=now + hold, started_at=now, finished_at=None)
        ).rowcount
    return now if won == 1 else None


def finish(ctx: ServiceContext, name: str, holder: str, started: datetime, *, period: timedelta,
           error: str | None = None) -> None:
    """Record the run; the job is not due again before `started + period` (at once after an error)."""
    now = ctx.clock.now()
    until = now if error else max(now, started + period - _slack(period))
    with transaction(ctx.sessions) as session:
        session.execute(
            sa.update(TABLE).where(TABLE.c.name == name, TABLE.c.holder == holder, TABLE.c.started_at == started)
            .values(lease_until=until, finished_at=now, runs=TABLE.c.runs + (0 if error else 1),
                    last_error=error[:2000] if error else None)
        )


def run_exclusive(ctx: ServiceContext, name: str, holder: str, fn: Callable[[], T], *, period: timedelta,
                  hold: timedelta | None = None) -> tuple[bool, T | None]:
    """Run `fn` if this process takes job `name`'s lease; returns (ran, what fn returned)."""
    hold = max(hold or period * 2, period, timedelta(seconds=30))
    started = take(ctx, name, holder, hold=hold)
    if started is None:
        return False, None
    try:
        result = fn()
    except Exception as exc:
        finish(ctx, name, holder, started, period=period, error=f"{type(exc).__name__}: {exc}")
        raise
    finish(ctx, name, holder, started, period=period)
    return True, result


def leases(ctx: ServiceContext) -> list[JobLease]:
    """Every job's lease (for /health and the tests)."""
    with ctx.sessions() as session:
        return list(session.exec(sa.select(JobLease).order_by(JobLease.name)).scalars())
