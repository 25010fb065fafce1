"""Rows that a batch writes and does not read back, INSERTed together: one statement per table for the batch.

The batch writers (services/intake_batch.py, services/dispatcher.py) write many cases in one
transaction. Each case's audit events, outbox rows and dispatch queue row would be an INSERT of their
own; inside `grouped(session)` they wait, and go to the store when the block ends, one INSERT with
many rows per statement, in the order first asked for.

What callers may rely on:
- Outside a `grouped` block, `insert` writes at once: code that calls it behaves the same anywhere.
- Nothing in the transaction reads around waiting rows: before the session executes any statement
  that names a table with rows waiting (a SELECT, an UPDATE or a DELETE, a subquery included), they
  are written (`install` hooks every session factory). A raw `text()` statement is not looked into:
  do not read these tables with one inside a block.
- A block that raises writes nothing of what waited; the caller's transaction rolls back anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlalchemy.sql.util import find_tables
from sqlmodel import Session

_KEY = "grouped_inserts"


class _Waiting:
    def __init__(self) -> None:
        self.rows: dict[sa.Insert, list[dict]] = {}
        self.tables: set[sa.FromClause] = set()


def insert(session: Session, statement: sa.Insert, rows: list[dict]) -> None:
    """INSERT `rows` with `statement` (prebuilt, no RETURNING): now, or when the `grouped` block ends."""
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is None:
        session.execute(statement, rows)
        return
    waiting.rows.setdefault(statement, []).extend(rows)
    waiting.tables.add(statement.table)


def write_waiting(session: Session) -> None:
    """Write what waits in `session`'s block now (the block goes on collecting)."""
    waiting: _Waiting | None = session.info.get(_KEY)
    if waiting is None or not waiting.rows:
        return
    rows, waiting.rows, waiting.tables = waiting.rows, {}, set()
    for statement, batch in rows.items():
        session.execute(statement, batch)


@contextmanager
def grouped(session: Session) -> Iterator[None]:
    """Within the block, `insert` collects; at its end, one INSERT per statement. Nested blocks join the outer."""
    if _KEY in session.info:
        yield
        return
    session.info[_KEY] = _Waiting()
    try:
        yield
        write_waiting(session)
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
    if waiting is not None and waiting.tables and _tables(state.statement) & waiting.tables:
        write_waiting(state.session)


def install(factory: sessionmaker) -> None:
    """Make sessions of `factory` write waiting rows before any statement that names their tables."""
    sa.event.listen(factory, "do_orm_execute", _before_execute)
