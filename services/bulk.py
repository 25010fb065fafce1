"""Many rows in one statement: INSERT and UPDATE of a list of rows, on PostgreSQL and SQLite.

On PostgreSQL each column travels as one array parameter and `unnest` turns them back into rows,
so the statement text is the same for 3 rows or 300: psycopg and the server prepare it once. (An
executemany with SQLAlchemy's "insertmanyvalues" writes one VALUES tuple per row, and parsing
that text grows with the batch; it was most of the time of a 200-event sync batch.) On SQLite,
where a statement costs no round trip, it is a plain executemany.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _arrays(session: Session, table: sa.Table, columns: Sequence[str], rows: list[dict[str, Any]],
            prefix: str, renames: dict[str, str] | None = None) -> tuple[list[str], list[str], dict[str, list[Any]]]:
    """(unnest argument per column, SELECT expression per column, parameters) for `rows`."""
    dialect = session.get_bind().dialect
    args, selects, params = [], [], {}
    for i, name in enumerate(columns):
        column = table.c[(renames or {}).get(name, name)]
        values = [row[name] for row in rows]
        bind = column.type.bind_processor(dialect)
        if isinstance(column.type, sa.JSON):
            values, sql_type, select = [None if v is None else json.dumps(v) for v in values], "TEXT", "::json"
        else:
            if bind is not None:
                values = [bind(v) for v in values]
            sql_type, select = column.type.compile(dialect=dialect), ""
        key = f"{prefix}{i}"
        params[key] = values
        args.append(f"CAST(:{key} AS {sql_type}[])")
        selects.append(f"v.c{i}{select}")
    return args, selects, params


def insert_many(session: Session, table: sa.Table, rows: list[dict[str, Any]],
                returning: Sequence[str] = ()) -> list[tuple]:
    """INSERT `rows` (all with the same keys); returns the `returning` columns of each new row.

    The order of what is returned is not promised on PostgreSQL: return a unique column to match rows by.
    """
    if not rows:
        return []
    columns = list(rows[0])
    if not _postgres(session):
        stmt = sa.insert(table)
        if returning:
            stmt = stmt.returning(*(table.c[c] for c in returning), sort_by_parameter_order=True)
            return [tuple(r) for r in session.execute(stmt, rows)]
        session.execute(stmt, rows)
        return []
    quote = session.get_bind().dialect.identifier_preparer.quote
    args, selects, params = _arrays(session, table, columns, rows, "p")
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"SELECT {', '.join(selects)} FROM unnest({', '.join(args)}) WITH ORDINALITY AS v({names}, n) ORDER BY n")
    if not returning:
        session.execute(sa.text(sql), params)
        return []
    sql = f"{sql} RETURNING {', '.join(quote(c) for c in returning)}"
    found = [tuple(r) for r in session.execute(sa.text(sql), params)]
    if len(found) != len(rows):
        raise RuntimeError("bulk insert returned a different number of rows")
    return found


def update_many(session: Session, table: sa.Table, rows: list[dict[str, Any]], *, match: Sequence[str],
                renames: dict[str, str] | None = None) -> int:
    """UPDATE each row of `table` whose `match` columns equal the row's, setting the row's other keys.

    `renames` maps a row key to the column it sets (to match a column's old value and set its new
    one). Returns how many rows were updated (a row whose match found nothing counts 0).
    """
    if not rows:
        return 0
    columns = list(rows[0])
    renames = renames or {}
    if not _postgres(session):
        stmt = sa.update(table).where(*(table.c[c] == sa.bindparam(f"m_{c}") for c in match)).values(
            {renames.get(c, c): sa.bindparam(f"s_{c}") for c in columns if c not in match})
        params = [{**{f"m_{c}": row[c] for c in match}, **{f"s_{c}": row[c] for c in columns if c not in match}}
                  for row in rows]
        result = session.execute(stmt, params)
        return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(rows)
    quote = session.get_bind().dialect.identifier_preparer.quote
    args, selects, params = _arrays(session, table, columns, rows, "u", renames)
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    target = quote(table.name)
    sets = ", ".join(f"{quote(renames.get(c, c))} = {selects[i]}" for i, c in enumerate(columns) if c not in match)
    where = " AND ".join(f"{target}.{quote(c)} = {selects[columns.index(c)]}" for c in match)
    sql = f"UPDATE {target} SET {sets} FROM unnest({', '.join(args)}) AS v({names}) WHERE {where}"
    return session.execute(sa.text(sql), params).rowcount
