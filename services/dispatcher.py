"""The asynchronous dispatcher: registered cases are offered to workers outside the request that registered them.

Registration (services/cases.py) writes a `PendingDispatch` row with the case and commits; it does
not wait for dispatch. `dispatch_pending` takes a batch of those rows and makes the offers
(services/dispatch.py) in one transaction that also deletes the rows.

What callers may rely on:
- Nothing is lost: a crash after registration but before dispatch leaves the row, and whichever
  dispatcher runs next (after a restart, or another process) takes it.
- No case is dispatched twice: the claim is a DELETE ... RETURNING, with `FOR UPDATE SKIP LOCKED`
  on PostgreSQL, so two processes on one store take disjoint batches; SQLite serialises writers.
- One bad case never blocks the rest: a batch runs under one savepoint; when any case fails, the
  batch runs again case by case, each in a savepoint of its own; the failing row goes back with a
  growing `not_before`, and after `MAX_ATTEMPTS` it is left registered for the supervisors' sweep (logged).
- `CaseDispatcher` is the loop `onegrid serve` runs: woken right after each registering commit,
  polling only as a fallback. While registrations pour in (its last batch held `GATHER_FROM` cases or
  more, less than `BUSY_FOR` ago), a wake waits up to `gather_s` for the next registering commit, so that
  a batch's fixed cost (its reads, its transaction) is shared by more cases; after a small batch, or a
  second after a big one, a wake dispatches at once.
  Until it is started (the CLI, tests, a script), `wake` dispatches inline, right after the commit,
  so a case registered anywhere is offered at once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Status
from models.elders import WelfareCheck
from models.tables import Case, CaseSource, Notification
from models.work import CaseTask, PendingDispatch, WorkOffer
from services import batch_reads, dispatch, dispatch_pool, followers, grouped_writes, snapshots, welfare_calls
from services.dispatch_pool import parent_code
from services.context import ServiceContext
from services.db import transaction

log = logging.getLogger(__name__)

BATCH = 50
GATHER_FROM = 4  # a batch at least this big means registrations pour in: the next wake gathers more
BUSY_FOR = timedelta(seconds=1)  # ... if it was taken this recently (the service clock)
MAX_ATTEMPTS = 5
TABLE = PendingDispatch.__table__
_INSERT = sa.insert(TABLE)  # built once: its compiled form is reused on every registration


def enqueue(session: Session, *, case_id: int, now: datetime) -> None:
    """Queue `case_id` for dispatch inside the registering transaction."""
    grouped_writes.write(session, _INSERT, [{"case_id": case_id, "queued_at": now, "attempts": 0, "not_before": now}])


NEW_ROWS = (CaseTask.__table__, WorkOffer.__table__, Notification.__table__)  # what a batch makes per case


def _claim(session: Session, now: datetime, limit: int) -> list[tuple[int, int]]:
    """Delete up to `limit` due rows and return (case_id, attempts) for them, oldest first.

    The DELETE is the transaction's first statement, so SQLite takes its write lock before reading
    (no stale snapshot), and PostgreSQL skips rows another dispatcher holds.
    """
    due = (select(TABLE.c.case_id).where(TABLE.c.not_before <= now)
           .order_by(TABLE.c.queued_at, TABLE.c.case_id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = session.execute(
        sa.delete(TABLE).where(TABLE.c.case_id.in_(due.scalar_subquery()))
        .returning(TABLE.c.case_id, TABLE.c.attempts)
    ).all()
    return sorted((row[0], row[1]) for row in rows)


_BATCH_CASES = (select(Case, WelfareCheck, sa.exists().where(CaseTask.case_id == Case.id))
                .outerjoin(WelfareCheck, WelfareCheck.case_id == Case.id)
                .where(Case.id.in_(sa.bindparam("case_ids", expanding=True))))


def _read_batch(session: Session, case_ids: list[int]) -> tuple[dict[int, Case], set[int]]:
    """The claimed cases, which of them have tasks already, and their welfare checks, in one query for the
    whole batch; their report photos, followers and workers in one each (`welfare_calls.check_of`, the
    work orders' `batch_reads` and `dispatch_pool.find_workers` answer from what this reads)."""
    found: dict[int, Case] = {}
    checks: dict[int, WelfareCheck | None] = dict.fromkeys(case_ids)
    with_tasks: set[int] = set()
    for case, check, has_tasks in session.exec(_BATCH_CASES, params={"case_ids": case_ids}):
        found[case.id] = case
        checks[case.id] = checks[case.id] or check
        if has_tasks:
            with_tasks.add(case.id)
    welfare_calls.note_checks(session, checks)
    batch_reads.read_batch(session, case_ids, without_tasks=set(case_ids) - with_tasks,
                           residents=[case.id for case in found.values() if case.source == CaseSource.RESIDENT])
    grids = {case.grid_code for case in found.values() if case.grid_code is not None}
    dispatch_pool.read_pools(session, grids | {parent_code(session, grid) for grid in grids} - {None})
    followers.read_for(session, case_ids)
    return found, with_tasks


def _dispatch_one(session: Session, ctx: ServiceContext, case: Case | None, has_tasks: bool) -> None:
    if case is None or Status(case.status) is not Status.REGISTERED:
        return  # withdrawn, cancelled or dispatched by hand meanwhile: nothing to offer
    if has_tasks:
        return  # its tasks exist already (dispatched by another path)
    dispatch.dispatch_new_case(session, ctx, case)


def dispatch_pending(ctx: ServiceContext, *, limit: int = BATCH) -> int:
    """Dispatch up to `limit` queued cases in one transaction; returns how many rows were taken."""
    try:  # camera snapshots first, outside any transaction, so the orders below carry them (services/snapshots.py)
        snapshots.fetch_pending(ctx, limit=limit)
    except Exception:  # noqa: BLE001 - a snapshot is a nicety: the cases are offered with their links
        log.exception("camera snapshots: fetching failed; the orders show the links")
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        claimed = _claim(session, now, limit)
        found, with_tasks = _read_batch(session, [case_id for case_id, _ in claimed]) if claimed else ({}, set())
        try:
            # The whole batch under one savepoint, not one per case; its audit rows, tasks, offers and work
            # orders in one INSERT each (new rows' keys are reserved under SQLite's write lock, BEGIN IMMEDIATE's).
            with session.begin_nested(), grouped_writes.grouped(session, new_rows=True, reserve=NEW_ROWS):
                for case_id, _ in claimed:
                    _dispatch_one(session, ctx, found.get(case_id), case_id in with_tasks)
        except Exception:  # noqa: BLE001 - some case failed: the batch again, case by case, each on its own
            log.debug("dispatcher: a batch of %s failed; dispatching its cases one by one", len(claimed))
            session.expire_all()  # what the batch set on its objects (a case's status) was rolled back with it
            found, with_tasks = _read_batch(session, [case_id for case_id, _ in claimed])
            _one_by_one(session, ctx, claimed, found, with_tasks, now)
    if claimed:
        ctx.on_notifications()  # after the commit: the work orders it queued go out at once
    return len(claimed)


def _one_by_one(session: Session, ctx: ServiceContext, claimed: list[tuple[int, int]], found: dict[int, Case],
                with_tasks: set[int], now: datetime) -> None:
    """Each case in a savepoint of its own: a failing one goes back to the queue with a growing
    `not_before` (or, after MAX_ATTEMPTS, is left registered for the sweep); the others are offered."""
    for case_id, attempts in claimed:
        try:
            with session.begin_nested(), grouped_writes.grouped(session, new_rows=True):  # a failure keeps none
                _dispatch_one(session, ctx, found.get(case_id), case_id in with_tasks)
        except Exception:
            dispatch_pool.forget_loads(session)  # its offers were taken back with its savepoint
            if attempts + 1 >= MAX_ATTEMPTS:
                log.exception("case id %s: dispatch failed %s times; left registered for the sweep",
                              case_id, attempts + 1)
                continue
            log.exception("case id %s: dispatch failed; will retry", case_id)
            session.execute(sa.insert(TABLE).values(
                case_id=case_id, queued_at=now, attempts=attempts + 1,
                not_before=now + timedelta(seconds=2 ** attempts)))


def queued(ctx: ServiceContext) -> int:
    """How many cases wait for the dispatcher (for /health and the benchmarks)."""
    with ctx.sessions() as session:
        return session.execute(sa.select(sa.func.count()).select_from(TABLE)).scalar_one()


class CaseDispatcher:
    """The dispatch loop of a running process (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, *, poll_interval: float = 5.0, batch: int = BATCH,
                 gather_s: float = 0.0) -> None:
        self.ctx = ctx
        self.poll_interval = poll_interval
        self.batch = batch
        self.gather_s = gather_s  # after a big batch, how long a wake waits for the next (0: never)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def wake(self) -> None:
        """Called after a registering commit, from any thread."""
        loop, event = self._loop, self._event
        if loop is None or event is None:
            dispatch_pending(self.ctx, limit=self.batch)  # not started: dispatch inline
            return
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop closed meanwhile (shutdown): the row waits for the next start
            pass

    async def run(self, stop: asyncio.Event) -> None:
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        try:
            while not stop.is_set():
                self._event.clear()
                taken_at = self.ctx.clock.now()
                try:
                    taken = await asyncio.to_thread(dispatch_pending, self.ctx, limit=self.batch)
                except Exception:  # noqa: BLE001 - the store may be restarting; the rows wait
                    log.exception("dispatcher: a batch failed; retrying after the poll interval")
                    taken = 0
                if taken >= self.batch:
                    continue  # more may be waiting: no sleep between full batches
                await self._wait(stop, self.poll_interval)
                busy = taken >= GATHER_FROM and self.ctx.clock.now() - taken_at <= BUSY_FOR
                if busy and self.gather_s > 0 and self._event.is_set() and not stop.is_set():
                    self._event.clear()  # busy: let the next registering commit join this batch
                    await self._wait(stop, self.gather_s)
        finally:
            self._loop = self._event = None

    async def _wait(self, stop: asyncio.Event, timeout: float) -> None:
        """Until a wake, `stop`, or `timeout` seconds."""
        waiter = asyncio.ensure_future(self._event.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
