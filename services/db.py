"""Engine and session factory for the case store (SQLite in WAL mode, or PostgreSQL), and its schema's state.

Engines hide statement parameters from errors and logs (`hide_parameters=True`): they carry outbox
payloads, descriptions and device ids, which must not reach a log line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import make_transient_to_detached, sessionmaker
from sqlmodel import Session

from services import grouped_writes

VERSION_TABLE = "alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo, hide_parameters=True,
                                  connect_args={"check_same_thread": False, "timeout": 30})

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

        turn = _WriterTurn()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            turn.take(conn.connection.dbapi_connection)
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                turn.give_back(conn.connection.dbapi_connection)
                raise

        @sa.event.listens_for(engine, "commit")
        @sa.event.listens_for(engine, "rollback")
        def _sqlite_end(conn):  # noqa: ANN001
            turn.give_back(conn.connection.dbapi_connection)

        @sa.event.listens_for(engine.pool, "checkin")
        def _sqlite_checkin(dbapi_conn, _record):  # noqa: ANN001
            turn.give_back(dbapi_conn)  # a connection returned without commit or rollback never keeps the turn

        @sa.event.listens_for(engine.pool, "invalidate")
        def _sqlite_invalidated(dbapi_conn, _record, _exc):  # noqa: ANN001
            turn.give_back(dbapi_conn)  # nor does one thrown away after an error

        return engine
    return sa.create_engine(url, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=10,
                            max_overflow=10)


class _WriterTurn:
    """The order of one process's SQLite transactions (every one takes the write lock: BEGIN IMMEDIATE).

    A transaction that finds the lock taken waits in SQLite's busy handler, which sleeps in growing steps
    of up to 100 ms, so it may start long after the lock is free: under load that was most of the API's
    p99. Within a process, transactions queue on this lock instead and start the moment the previous
    one ends; SQLite's busy timeout still orders them against other processes. A holder is a DBAPI
    connection, so the turn is given back from whichever thread ends the transaction.
    """

    WAIT_S = 30.0  # as the busy timeout

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holder: int | None = None

    def take(self, dbapi_conn: object) -> None:
        if not self.lock.acquire(timeout=self.WAIT_S):
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, TimeoutError("database is locked"))
        self.holder = id(dbapi_conn)

    def give_back(self, dbapi_conn: object) -> None:
        if self.holder == id(dbapi_conn):
            self.holder = None
            self.lock.release()


def insert_unless_exists(session: Session, table: sa.Table, values: dict, *, unique: list[str],
                         returning: sa.Column) -> object | None:
    """INSERT `values` into `table` unless a row with the same `unique` columns exists (ON CONFLICT DO
    NOTHING, on SQLite and PostgreSQL alike); the new row's `returning` value, or None when it existed."""
    stmt = _insert_or_nothing(table, tuple(values), tuple(unique), returning.name)
    # RETURNING yields the row only when it was inserted; rowcount is not reliable here on psycopg.
    row = session.execute(stmt, values).first()
    return row[0] if row is not None else None


@cache
def _insert_or_nothing(table: sa.Table, keys: tuple[str, ...], unique: tuple[str, ...], returning: str) -> sa.TextClause:
    """The statement, written once per shape: SQLAlchemy's ON CONFLICT constructs are compiled afresh on
    every execution (they have no cache key), a text() with typed parameters is compiled once."""
    columns, conflict = (", ".join(f'"{key}"' for key in names) for names in (keys, unique))
    binds = ", ".join(f":{key}" for key in keys)
    sql = (f'INSERT INTO "{table.name}" ({columns}) VALUES ({binds}) '
           f'ON CONFLICT ({conflict}) DO NOTHING RETURNING "{returning}"')
    return sa.text(sql).bindparams(*(sa.bindparam(key, type_=table.c[key].type) for key in keys)) \
        .columns(table.c[returning])


INSERTED_NOW = "inserted_now"  # session.info: the models `insert_now` wrote rows of in this session


def insert_now(session: Session, row: object) -> None:
    """Write the new `row` (a table model's object, new or added) with one INSERT now, and keep it in
    `session` as if it had been loaded: its id is set, and no flush of the unit of work is needed.

    For the hot paths (the dispatcher makes a task, an offer and a work order per case): the unit of
    work's flush costs more than the statement. A column left None that has a default gets the
    default, and the attribute is read back when next used.

    In a block that takes new rows (`grouped_writes.grouped(session, new_rows=True)`: the intake and
    dispatcher batches), a row that fills every such column gets its key at once and its INSERT waits
    for the batch's.
    """
    if row in session:
        session.expunge(row)  # added, not flushed: written here instead
    plan = _insert_plan(type(row))
    if plan.complete(row) and grouped_writes.new_row(session, row, plan.table, plan.pk, plan.values):
        make_transient_to_detached(row)  # its key is set, its INSERT waits with the batch's
        session.add(row)
        session.info.setdefault(INSERTED_NOW, set()).add(type(row))
        return
    values, defaulted = {}, []
    for key, column_key, has_default in plan.columns:
        value = getattr(row, key)
        if value is None and has_default:
            if key != plan.pk:  # the key comes back from RETURNING
                defaulted.append(key)
        else:
            values[column_key] = value
    setattr(row, plan.pk, session.execute(plan.statement, values).scalar_one())
    make_transient_to_detached(row)
    session.add(row)
    session.info.setdefault(INSERTED_NOW, set()).add(type(row))  # never in `session.new`: say what was written
    if defaulted:
        session.expire(row, defaulted)


@dataclass(frozen=True)
class _InsertPlan:
    statement: sa.Insert  # INSERT ... RETURNING the key; the columns come from the parameters' keys
    pk: str
    columns: tuple[tuple[str, str, bool], ...]  # (attribute, column, filled by the store when None)
    table: sa.Table

    def complete(self, row: object) -> bool:
        """Whether `row` gives every column the store would fill (its key aside): then its INSERT can wait."""
        state = row.__dict__
        return all(state.get(key) is not None for key, _, has_default in self.columns if has_default and key != self.pk)

    def values(self, row: object) -> dict:
        """The INSERT's parameters from the object as it is now (a batch's waiting INSERT reads them late)."""
        state = row.__dict__
        return {column: state[key] if key in state else _unset(row, key) for key, column, _ in self.columns}


def _unset(row: object, key: str) -> None:
    """A column the object never had a value for is NULL; one expired meanwhile would be lost: refuse."""
    if key in sa.inspect(row).expired_attributes:
        raise RuntimeError(f"{type(row).__name__}.{key} was expired before its waiting INSERT was written")


@cache
def _insert_plan(model: type) -> _InsertPlan:
    mapper = sa.inspect(model)
    (pk,) = mapper.primary_key
    columns = tuple((prop.key, prop.columns[0].key, prop.columns[0] is pk or (
        prop.columns[0].default is not None or prop.columns[0].server_default is not None))
        for prop in mapper.column_attrs)
    return _InsertPlan(sa.insert(mapper.local_table).returning(pk), mapper.get_property_by_column(pk).key, columns,
                       mapper.local_table)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, class_=Session, expire_on_commit=False)
    grouped_writes.install(factory)  # batch writers' waiting rows are written before anything reads them
    return factory


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


@cache
def code_heads() -> tuple[str, ...]:
    """The Alembic head revision(s) this code needs (read once from migrations/)."""
    return tuple(sorted(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()))


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands against the code: `current` is empty for a store with no schema."""

    current: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        return not self.current

    @property
    def known(self) -> bool:
        """False when the store is at a revision this code does not have (made by a newer OneGrid)."""
        script = ScriptDirectory(str(MIGRATIONS_DIR))
        return all(_has_revision(script, rev) for rev in self.current)


    @property
    def problem(self) -> str | None:
        """What is wrong with this schema and what to run, in one line; None at head."""
        if self.at_head:
            return None
        if self.empty:
            return "the store has no schema: run `onegrid migrate` (or `onegrid setup` for the demo)"
        if not self.known:
            return (f"the store's schema is at {', '.join(self.current)}, which this OneGrid does not know "
                    "(made by a newer version?): run that version, or restore a backup")
        return (f"the store's schema is at {', '.join(self.current)}, this OneGrid needs {', '.join(self.head)}: "
                "back up the store, then run `onegrid migrate`")


def _has_revision(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is not None
    except Exception:  # noqa: BLE001 - alembic raises its own error types for unknown revisions
        return False


def schema_state(engine: Engine) -> SchemaState:
    """Read the store's Alembic revision; raises the driver's error when the store does not answer.

    Reads `alembic_version` with plain SQL (Alembic's MigrationContext would log two lines per call,
    and /health/ready calls this on every probe).
    """
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return SchemaState(current=(), head=code_heads())
        current = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return SchemaState(current=tuple(sorted(current)), head=code_heads())
