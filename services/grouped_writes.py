"""Rows that a batch writes and does not read back, written together: one statement per kind for the batch.

The batch writers (services/intake_batch.py, services/dispatcher.py) write many cases in one
transaction. Each case's audit events, outbox rows and dispatch queue row would be an INSERT of their
own, and each work order's task step and message link an UPDATE; inside `grouped(session)` they wait,
and go to the store when the block ends, one statement with many parameter sets each (executemany),
parents before children (the tables' foreign-key order).

What callers may rely on:
- Outside a `grouped` block, `write` executes at once: code that calls it behaves the same anywhere.
- Only statements whose result nobody looks at go through `write`: prebuilt INSERTs without RETURNING
  and UPDATEs whose row count is not checked.
- Nothing in the transaction reads around waiting rows: before the session executes any statement
  that names a table with rows waiting (a SELECT, an UPDATE or a DELETE, a subquery included; not a
  plain INSERT ... VALUES, which reads nothing), that table's are written (`install` hooks every
  session factory). A raw `text()` statement is not looked into:
  do not read these tables with one inside a block.
- Writes to one table keep their order: a statement for a table that has rows waiting under another
  statement writes those first, and so does a flush of the session's unit of work.
- A block that raises writes nothing of what waited; the caller's transaction rolls back anyway.

New rows (`grouped(session, new_rows=True)`: the intake and dispatcher batches): `new_row` gives a new
object its primary key at once, from keys the block reserves a few at a time (PostgreSQL: the table's
sequence; SQLite: after the largest key, which is safe only while the transaction holds the write
lock, as every transaction here does from its `BEGIN IMMEDIATE`), and its INSERT waits with the rest. The
object is in the session as if loaded; what the block changes on it before its INSERT goes out is
written with it (`waits` tells callers that may skip their UPDATE). Any other write to such a table
(a plain INSERT too, or the unit of work's flush) first writes what waits, and on SQLite makes the
block read the largest key afresh. A block that raises takes its new objects out of the session.
In such a block an UPDATE of one row whose count is checked (a version check) may wait as well
(`write_checked`): when written, a count short of its rows raises and the whole block fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlalchemy.sql.util import find_tables
from sqlmodel import Session

_KEY = "grouped_writes"


class _Waiting:
    def __init__(self, new_rows: bool, reserve: tuple[sa.Table, ...] = ()) -> None:
        self.rows: dict[sa.Insert | sa.Update, list] = {}  # parameter sets, or new objects (built when written)
        self.tables: dict[sa.FromClause, sa.Insert | sa.Update] = {}  # the last statement asked for per table
        self.build: dict[sa.Insert, Callable[[object], dict]] = {}  # a new object's parameters, at its write
        self.new_rows = new_rows
        self.new: dict[int, object] = {}  # id() -> new objects whose INSERT still waits
        self.made: list[object] = []  # every new object of the block (taken out of the session if it fails)
        self.keys: dict[sa.Table, Iterator[int]] = {}  # keys reserved and not yet given, per table
        self.checked: dict[sa.Update, Exception] = {}  # UPDATEs that must each change one row, and what to raise
        self.reserve = reserve  # tables whose keys the first need reserves together, in one statement

    def next_key(self, session: Session, table: sa.Table) -> int:
        keys = self.keys.get(table)
        key = next(keys, None) if keys is not None else None
        if key is None:
            if table in self.reserve:
                self.keys.update(_reserve(session, self.reserve))
                self.reserve = ()  # once: a table that runs out, or is forgotten, reserves alone
            else:
                self.keys.update(_reserve(session, (table,)))
            key = next(self.keys[table])
        return key


RESERVED = 32  # PostgreSQL: keys taken from a sequence per query (the unused ones are a gap, as any rollback's)


def _reserve(session: Session, tables: tuple[sa.Table, ...]) -> dict[sa.Table, Iterator[int]]:
    """Keys for each of `tables`, in one statement."""
    pks = [table.primary_key.columns[0] for table in tables]
    if session.get_bind().dialect.name == "postgresql":
        sequences = ", ".join(f"nextval(pg_get_serial_sequence(:table_{i}, :column_{i}))" for i in range(len(tables)))
        params = {f"table_{i}": table.name for i, table in enumerate(tables)}
        params.update({f"column_{i}": pk.name for i, pk in enumerate(pks)})
        rows = session.execute(sa.text(f"SELECT {sequences} FROM generate_series(1, {RESERVED})"), params).all()
        return {table: iter([row[i] for row in rows]) for i, table in enumerate(tables)}
    # SQLite: the next keys follow the largest, which nobody else moves while this transaction holds the write lock.
    tops = session.execute(sa.select(*(sa.select(sa.func.max(pk)).scalar_subquery() for pk in pks))).one()
    return {table: itertools.count((top or 0) + 1) for table, top in zip(tables, tops, strict=True)}


def new_row(session: Session, row: object, table: sa.Table, key: str, build: Callable[[object], dict]) -> bool:
    """In a `grouped(session, new_rows=True)` block: set `row`'s primary key (attribute `key`) from the
    block's reserved keys and let its INSERT wait; `build(row)` makes its parameters when it is written.
    False outside such a block: the caller writes it now."""
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is None or not waiting.new_rows:
        return False
    row.__dict__[key] = waiting.next_key(session, table)
    statement = _insert_of(table)
    if waiting.tables.get(table, statement) is not statement:
        write_waiting(session, frozenset({table}))
    waiting.rows.setdefault(statement, []).append(row)
    waiting.build[statement] = build
    waiting.tables[table] = statement
    waiting.new[id(row)] = row
    waiting.made.append(row)
    return True


def write_checked(session: Session, statement: sa.Update, row: dict, stale: Exception) -> bool:
    """In a block that takes new rows (a batch): let the UPDATE of one row (a conditional
    one: a version check) wait with the rest; when written, if any of them changed no row, `stale` (or
    another's) is raised and the block fails. False elsewhere: the caller executes it now and checks it."""
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is None or not waiting.new_rows:
        return False
    known = waiting.rows.get(statement)
    if known and known[0].keys() != row.keys():
        write_waiting(session, frozenset({statement.table}))  # one executemany takes one set of names
    write(session, statement, [row])
    waiting.checked[statement] = stale
    return True


def waits(session: Session, row: object) -> bool:
    """Whether `row`'s INSERT still waits in the block: a change set on the object now is written with it."""
    waiting: _Waiting | None = session.info.get(_KEY)
    return waiting is not None and id(row) in waiting.new


def _rank(table: sa.FromClause) -> int:
    metadata = getattr(table, "metadata", None)
    if metadata is None:
        return 0
    return _ranks(metadata, len(metadata.tables)).get(table, 0)  # (a table defined later: ranked afresh)


@cache
def _ranks(metadata: sa.MetaData, _tables: int) -> dict[sa.Table, int]:
    return {table: rank for rank, table in enumerate(metadata.sorted_tables)}


@cache
def _insert_of(table: sa.Table) -> sa.Insert:
    return sa.insert(table)


def write(session: Session, statement: sa.Insert | sa.Update, rows: list[dict]) -> None:
    """Execute `statement` (prebuilt; no RETURNING, its row count unread) for each of `rows`: now, or when
    the `grouped` block ends."""
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is None:
        session.execute(statement, rows)
        return
    if waiting.tables.get(statement.table, statement) is not statement:
        write_waiting(session, frozenset({statement.table}))  # another statement's rows for it were asked first
    waiting.rows.setdefault(statement, []).extend(rows)
    waiting.tables[statement.table] = statement


def write_waiting(session: Session, tables: frozenset[sa.FromClause] | None = None) -> None:
    """Write what waits in `session`'s block now, for `tables` only when given (the block goes on collecting)."""
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is None or not waiting.rows:
        return
    # Parents before children (the tables' foreign-key order): a table whose rows went out early (a read
    # of it wrote them) and came back later in the block is still written before the rows that point at it.
    due = sorted((statement for statement in waiting.rows if tables is None or statement.table in tables),
                 key=lambda statement: _rank(statement.table))
    batches = [(statement, waiting.rows.pop(statement)) for statement in due]
    for statement, _ in batches:
        if waiting.tables.get(statement.table) is statement:
            del waiting.tables[statement.table]
    for statement, batch in batches:
        build = waiting.build.get(statement)
        if build is not None:
            for row in batch:
                del waiting.new[id(row)]
            batch = [build(row) for row in batch]
        result = session.execute(statement, batch)
        stale = waiting.checked.pop(statement, None)
        if stale is not None and result.rowcount != len(batch):
            raise stale


@contextmanager
def grouped(session: Session, *, new_rows: bool = False, reserve: tuple[sa.Table, ...] = ()) -> Iterator[None]:
    """Within the block, `write` collects; at its end, one execution per statement. Nested blocks join the
    outer. `new_rows`: `new_row` lets new objects' INSERTs wait too (see the module); the keys of the
    `reserve` tables are reserved together at the first need of any."""
    if _KEY in session.info:
        yield
        return
    waiting = session.info[_KEY] = _Waiting(new_rows, reserve)
    try:
        yield
        write_waiting(session)
    except BaseException:
        for row in waiting.made:  # never written, or rolled back with the caller's transaction
            if row in session:
                session.expunge(row)
        raise
    finally:
        session.info.pop(_KEY, None)


_TABLES: WeakKeyDictionary[sa.Executable, frozenset[sa.FromClause]] = WeakKeyDictionary()


def _tables(statement: sa.Executable) -> frozenset[sa.FromClause]:
    """The tables a statement names, subqueries included; remembered for the prebuilt hot statements."""
    found = _TABLES.get(statement)
    if found is None:
        found = frozenset(find_tables(statement, include_aliases=True, include_crud=True))
        _TABLES[statement] = found
    return found


def _before_execute(state: ORMExecuteState) -> None:
    waiting: _Waiting | None = state.session.info.get(_KEY)
    if waiting is None or not waiting.tables and not waiting.keys:
        return
    if state.statement in waiting.build:
        return  # the block's own new rows going out
    named = _tables(state.statement)
    if waiting.keys and _adds_only(state.statement) and not named.isdisjoint(waiting.keys):
        write_waiting(state.session, named)  # another INSERT into a table of new rows: theirs go first,
        _forget_sqlite_keys(state.session, waiting, named)  # and its key may be one the block reserved
        return
    if waiting.tables and not _adds_only(state.statement) and not named.isdisjoint(waiting.tables):
        write_waiting(state.session, named)


def _forget_sqlite_keys(session: Session, waiting: _Waiting, tables: Iterable[sa.FromClause]) -> None:
    """SQLite's next key is the largest plus one: after another writer's INSERT, read it afresh."""
    if session.get_bind().dialect.name != "postgresql":
        for table in tables:
            waiting.keys.pop(table, None)


def _adds_only(statement: sa.Executable) -> bool:
    """A plain INSERT ... VALUES: it reads no row, so rows waiting for its table may wait on."""
    return isinstance(statement, sa.Insert) and statement.select is None and not statement._post_values_clause


def _before_flush(session: Session, _flush_context: object, _instances: object) -> None:
    write_waiting(session)  # the unit of work's own writes come after what was asked for before them
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is not None and waiting.keys:
        _forget_sqlite_keys(session, waiting, list(waiting.keys))  # it may insert into them


def install(factory: sessionmaker) -> None:
    """Make sessions of `factory` write waiting rows before any statement that names their tables, and
    before the unit of work flushes (an object's UPDATE must not be overtaken by an older waiting one)."""
    sa.event.listen(factory, "do_orm_execute", _before_execute)
    sa.event.listen(factory, "before_flush", _before_flush)
