"""One process at a time runs a singleton loop (a bot's sender, the upstream relay), the others stand by.

On PostgreSQL the leader holds a session-level advisory lock (`pg_try_advisory_lock`) on a
connection of its own. PostgreSQL releases it the moment that connection ends, so when the leader
process dies (SIGKILL, OOM, a crash) its socket closes, the lock is free, and a standby that asks
every `retry_s` takes over within about that long (measured in tests/store/test_leadership.py).
On SQLite one process is the supported layout, and the lock is a no-op: the loop simply runs.

What callers may rely on:
- At most one process runs `work` for a given name at a time, on one PostgreSQL database.
- The leader checks its lock connection every `check_s`; if the connection is lost (the database
  restarted, a network cut) it stops `work` (cleanly: what is on the wire finishes) before another
  process can have taken over for long, and then competes for the lock again.
- A standby takes over within `retry_s` (plus connect time) of the leader's connection ending. A
  leader whose host vanishes without closing its socket is noticed by PostgreSQL's TCP keepalive
  (docs/DEPLOY.md says how to set it short).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

Work = Callable[[asyncio.Event], Awaitable[Any]]
ASK_WAIT = 5.0  # seconds a cancelled process waits for its ask for the lock to end (see Leadership._acquire)


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key from `name` (for a bot: a hash of its token, never the token)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def token_name(kind: str, secret: str) -> str:
    """The leadership name of a loop bound to a secret (a bot token): kind + the secret's hash."""
    return f"{kind}:{hashlib.sha256(secret.encode()).hexdigest()[:32]}"


class Leadership:
    """Run `work(stop)` only while this process holds the lock called `name` (see the module docstring)."""

    def __init__(self, engine: Engine, name: str, *, retry_s: float = 1.0, check_s: float = 2.0,
                 grace_s: float = 10.0) -> None:
        self.name = name
        self.key = lock_key(name)
        self.retry_s, self.check_s, self.grace_s = retry_s, check_s, grace_s
        self.postgres = engine.dialect.name == "postgresql"
        # A pool of its own and no pooling: closing the connection really ends the session (and the lock).
        self._engine = sa.create_engine(engine.url, poolclass=NullPool) if self.postgres else None
        self.leader = False
        self.terms = 0  # how many times this process became the leader
        # The lock connection is used from worker threads: a check still running when the leader is
        # cancelled must not overlap the unlock and close.
        self._conn_lock = threading.Lock()

    async def run(self, stop: asyncio.Event, work: Work) -> None:
        """Until `stop`: wait for the lock, run `work` while holding it; `work` gets its own stop event."""
        if not self.postgres:
            self.leader, self.terms = True, self.terms + 1
            try:
                await work(stop)
            finally:
                self.leader = False
            return
        try:
            while not stop.is_set():
                conn = await self._acquire()
                if conn is None:
                    await _wait(stop, self.retry_s)
                    continue
                try:
                    await self._lead(stop, conn, work)
                finally:
                    await asyncio.shield(asyncio.to_thread(self._unlock, conn))
        finally:
            self._engine.dispose()

    async def _lead(self, stop: asyncio.Event, conn: Connection, work: Work) -> None:
        self.leader, self.terms = True, self.terms + 1
        log.info("this process now runs %s", self.name.split(":")[0])
        inner = asyncio.Event()
        task = asyncio.ensure_future(work(inner))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set() and not task.done():
                await asyncio.wait([task, stopping], timeout=self.check_s, return_when=asyncio.FIRST_COMPLETED)
                if not stop.is_set() and not task.done() and not await asyncio.to_thread(self._alive, conn):
                    log.error("lost the database connection holding the %s lock; stopping it here",
                              self.name.split(":")[0])
                    break
        finally:
            stopping.cancel()
            inner.set()
            self.leader = False
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=self.grace_s)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            except Exception:  # noqa: BLE001 - the work failed; we compete for the lock again
                log.exception("%s stopped with an error", self.name.split(":")[0])

    async def _acquire(self) -> Connection | None:
        """The lock's connection if the lock was free, else None.

        Cancelled while the worker thread asks (a process stopped just after it started), it lets the ask
        end (a connect and one statement; at most `ASK_WAIT` s) and gives back a lock it got before the
        task ends, rather than leave it held by a connection nobody owns until the garbage collector
        finds it. An ask still going after that gives the lock back itself when it ends.
        """
        attempt = _Attempt()
        asking = asyncio.ensure_future(asyncio.to_thread(self._try_lock, attempt))
        try:
            return await asyncio.shield(asking)
        except BaseException:
            with contextlib.suppress(BaseException):  # cancelled again: the flag below still holds
                await asyncio.wait({asking}, timeout=ASK_WAIT)
            with attempt.lock:
                attempt.abandoned = True
                conn, attempt.conn = attempt.conn, None
            if conn is not None:  # got it, but nobody will use it
                await asyncio.shield(asyncio.to_thread(self._unlock, conn))
            raise

    # -- the lock connection (sync, in a worker thread) --
    def _try_lock(self, attempt: _Attempt) -> Connection | None:
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception as exc:  # noqa: BLE001 - the database may be restarting: stand by
            log.warning("cannot reach the database to ask for the %s lock: %s", self.name.split(":")[0], exc)
            return None
        try:
            if conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
                with attempt.lock:
                    if not attempt.abandoned:
                        attempt.conn = conn
                        return conn
                self._unlock(conn)  # nobody waits for the answer any more
                return None
        except Exception:  # noqa: BLE001
            log.warning("asking for the %s lock failed", self.name.split(":")[0], exc_info=True)
        conn.close()
        return None

    def _alive(self, conn: Connection) -> bool:
        with self._conn_lock:
            if conn.closed:
                return False
            try:
                conn.execute(sa.text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - any failure: the session (and the lock with it) may be gone
                return False

    def _unlock(self, conn: Connection) -> None:
        with self._conn_lock:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            except Exception:  # noqa: BLE001 - closing the connection releases it anyway
                pass
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class _Attempt:
    """One ask for the lock, shared by the asking thread and the task waiting for its answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False  # the waiting task was cancelled
        self.conn: Connection | None = None  # the lock's connection, once handed over


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
