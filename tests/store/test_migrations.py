"""Alembic migrations: every revision goes up and down cleanly, and head matches the models.

Revisions are listed from the script directory, so a new revision is walked without editing
this file. The walk runs on a fresh SQLite file and on a fresh PostgreSQL database made for
the test (skipped, with the reason, when no PostgreSQL answers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

import models.registry  # noqa: F401  (registers every table on SQLModel.metadata)
from services.db import alembic_config, downgrade, upgrade
from tests.conftest import POSTGRES_ADMIN_URL, Store, _postgres_reason

ONEGRID_TABLES = set(SQLModel.metadata.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a brand-new, never-migrated database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    reason = _postgres_reason()
    if reason:
        pytest.skip(reason)
    name = f"onegrid_mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _revisions(url: str) -> list[Any]:
    """Revisions from base to head; the history must be linear (merge any branches)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    assert len(script.get_heads()) == 1, f"migration history has several heads: {script.get_heads()}"
    return list(reversed(list(script.walk_revisions("base", "heads"))))


def _schema(url: str) -> tuple[str | None, dict[str, Any]]:
    """Current revision and a comparable snapshot of every table, column, index and foreign key."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            insp = sa.inspect(conn)
            snapshot = {}
            for table in sorted(insp.get_table_names()):
                snapshot[table] = {
                    "columns": sorted(
                        (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
                    ),
                    "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in insp.get_indexes(table)
                    ),
                    "fks": sorted(
                        (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                        for f in insp.get_foreign_keys(table)
                    ),
                }
    finally:
        engine.dispose()
    return current, snapshot


def test_walk_every_revision_up_down_and_up_again(empty_url: str) -> None:
    revisions = _revisions(empty_url)
    assert revisions, "no migrations found"
    assert revisions[0].down_revision is None

    # Up, one revision at a time, remembering the schema at each step.
    seen: dict[str, dict[str, Any]] = {}
    base_current, base_schema = _schema(empty_url)
    assert base_current is None
    for rev in revisions:
        upgrade(empty_url, rev.revision)
        current, schema = _schema(empty_url)
        assert current == rev.revision
        seen[rev.revision] = schema
    head_schema = seen[revisions[-1].revision]
    assert ONEGRID_TABLES <= set(head_schema), f"missing at head: {ONEGRID_TABLES - set(head_schema)}"

    # Down, one revision at a time: each step must restore exactly the schema it had on the way up.
    for rev in reversed(revisions):
        target = rev.down_revision or "base"
        downgrade(empty_url, target)
        current, schema = _schema(empty_url)
        if rev.down_revision is None:
            assert current is None
            leftovers = set(schema) - {"alembic_version"}
            assert not leftovers, f"tables left after downgrade to base: {sorted(leftovers)}"
        else:
            assert current == rev.down_revision
            assert schema == seen[rev.down_revision], f"downgrade of {rev.revision} did not restore {target}"

    # And up again to head in one go: same schema as the step-by-step walk.
    upgrade(empty_url, "head")
    current, schema = _schema(empty_url)
    assert current == revisions[-1].revision
    assert schema == head_schema
    assert ONEGRID_TABLES <= set(schema)


def _diffs(conn: sa.Connection, metadata: sa.MetaData) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return compare_metadata(ctx, metadata)


def test_migrations_at_head_match_the_models(db: Store) -> None:
    # No type-compare special-casing is needed: Alembic compares a TypeDecorator such as
    # UTCDateTime through its `impl` (DateTime(timezone=True)), which is what 0001 creates.
    with db.engine.connect() as conn:
        diffs = _diffs(conn, SQLModel.metadata)
    assert diffs == [], "models and migrations differ; write a migration:\n" + "\n".join(map(repr, diffs))


def test_model_comparison_is_not_vacuous(db: Store) -> None:
    # Guard against the comparison above silently comparing nothing: a changed model must show up.
    altered = sa.MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(altered)
    altered.tables["category"].append_column(sa.Column("colour", sa.String(16), nullable=True))
    with db.engine.connect() as conn:
        diffs = _diffs(conn, altered)
    assert [d[0] for d in diffs] == ["add_column"], diffs
