"""Engine and session factory for the case store (SQLite in WAL mode, or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # pysqlite's own BEGIN handling defers locking; take the write lock at BEGIN instead
            # so two writers queue on busy_timeout rather than failing on lock upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=Session, expire_on_commit=False)


class CommitHook(Protocol):
    """Something that rides along in the transactions of the code it is set for (see `commit_hook`)."""

    def begin(self, session: Session) -> None:
        """A transaction started on `session`."""

    def before_commit(self, session: Session) -> bool:
        """Add its own writes to `session` before it commits; True when it did (then `after_commit` follows)."""

    def after_commit(self) -> None:
        """The transaction that carried its writes committed."""


_commit_hook: ContextVar[CommitHook | None] = ContextVar("onegrid_commit_hook", default=None)


@contextmanager
def commit_hook(hook: CommitHook) -> Iterator[None]:
    """Every `transaction()` in this context (threads started with asyncio.to_thread included) calls `hook`.

    The inbox uses it to mark an inbound message done in the same commit as its handler's effects.
    """
    token = _commit_hook.set(hook)
    try:
        yield
    finally:
        _commit_hook.reset(token)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back everything on any error."""
    hook = _commit_hook.get()
    carried = False
    with factory() as session:
        with session.begin():
            if hook is not None:
                hook.begin(session)
            yield session
            if hook is not None:
                carried = hook.before_commit(session)
        if carried:
            hook.after_commit()


def alembic_config(url: str):  # noqa: ANN201
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` with Alembic (the only way the schema is made)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
