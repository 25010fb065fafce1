"""Rows that a batch writes and does not read back, written together: one statement per kind for the batch.

The batch writers (services/intake_batch.py, services/dispatcher.py) write many cases in one
transaction. Each case's audit events, outbox rows and dispatch queue row would be an INSERT of their
own, and each work order's task step and message link an UPDATE; inside `grouped(session)` they wait,
and go to the store when the block ends, one statement with many parameter sets each (executemany),
in the order first asked for.

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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.orm import ORMExecuteState, sessionmaker
from sqlalchemy.sql.util import find_tables
from sqlmodel import Session

_KEY = "grouped_writes"


class _Waiting:
    def __init__(self) -> None:
        self.rows: dict[sa.Insert | sa.Update, list[dict]] = {}
        self.tables: dict[sa.FromClause, sa.Insert | sa.Update] = {}  # the last statement asked for per table


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
    due = [statement for statement in waiting.rows if tables is None or statement.table in tables]
    batches = [(statement, waiting.rows.pop(statement)) for statement in due]
    for statement, _ in batches:
        if waiting.tables.get(statement.table) is statement:
            del waiting.tables[statement.table]
    for statement, batch in batches:
        session.execute(statement, batch)


@contextmanager
def grouped(session: Session) -> Iterator[None]:
    """Within the block, `write` collects; at its end, one execution per statement. Nested blocks join the outer."""
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
    if waiting is None or not waiting.tables or _adds_only(state.statement):
        return
    named = _tables(state.statement)
    if not named.isdisjoint(waiting.tables):
        write_waiting(state.session, named)


def _adds_only(statement: sa.Executable) -> bool:
    """A plain INSERT ... VALUES: it reads no row, so rows waiting for its table may wait on."""
    return isinstance(statement, sa.Insert) and statement.select is None and not statement._post_values_clause


def _before_flush(session: Session, _flush_context: object, _instances: object) -> None:
    write_waiting(session)  # the unit of work's own writes come after what was asked for before them


def install(factory: sessionmaker) -> None:
    """Make sessions of `factory` write waiting rows before any statement that names their tables, and
    before the unit of work flushes (an object's UPDATE must not be overtaken by an older waiting one)."""
    sa.event.listen(factory, "do_orm_execute", _before_execute)
    sa.event.listen(factory, "before_flush", _before_flush)
