"""The reference cache (services/reference.py) on SQLite and PostgreSQL: an edit is seen by the next report,
in this process and in another one on the same store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from models.api import ClearRule
from services import areas, reference
from services.area_import import import_geojson
from services.cases import UnknownCategory
from services.catalogue import set_category_fields
from services.db import make_engine, make_session_factory
from services.intake_rules import intake_rule, set_intake_rule
from tests.worker_support import DEMO_MAP, OTHER_GRID, make_ctx, report


@pytest.fixture
def ctx(db, clock, tmp_path):  # noqa: ANN001, ANN201
    return make_ctx(db.sessions, clock, tmp_path)


def test_a_category_edit_reaches_the_next_report_here_and_in_another_process(ctx, db, clock) -> None:
    first = report(ctx)  # warms this process's cache with the category and the grid's areas
    engine = make_engine(db.url)
    other = replace(ctx, sessions=make_session_factory(engine))  # a second process on the same store
    try:
        report(other)  # and warms the other one's
        set_category_fields(db.sessions, "exposed_garbage", accept_sla_minutes=15, accept_sla_unit="clock_minutes")
        here, there = report(ctx), report(other)
        assert first.accept_due_at - first.created_at != timedelta(minutes=15)
        assert here.accept_due_at - here.created_at == timedelta(minutes=15)
        assert there.accept_due_at - there.created_at == timedelta(minutes=15)

        set_category_fields(db.sessions, "exposed_garbage", active="false")
        for process in (ctx, other):
            with pytest.raises(UnknownCategory):
                report(process)
    finally:
        engine.dispose()


def test_an_intake_rule_set_after_the_cache_warmed_is_the_one_in_force(ctx) -> None:
    assert intake_rule(ctx, category_code="exposed_garbage")[1] == ctx.settings.intake_fold_window_s
    set_intake_rule(ctx, category_code="exposed_garbage", on_clear=ClearRule.CLOSE, fold_window_s=120)
    assert intake_rule(ctx, category_code="exposed_garbage") == (ClearRule.CLOSE, 120)


def test_the_first_area_asked_at_a_revision_reads_them_all_and_a_map_import_is_seen_next(ctx, db, clock) -> None:
    report(ctx)  # the revision's first miss read every area
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001 - SQLAlchemy's event signature
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with db.sessions() as session:
            chains = [areas.area_chain(session, code) for code in (OTHER_GRID, "SH-CN-01-003", "SH-PD-03-002")]
            nowhere = reference.area(session, "SH-XX-99-999")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)
    assert [[a.code for a in chain] for chain in chains] == [
        [OTHER_GRID, "SH-HP-01", "SH-HP", "SH"], ["SH-CN-01-003", "SH-CN-01", "SH-CN", "SH"],
        ["SH-PD-03-002", "SH-PD-03", "SH-PD", "SH"]]
    assert nowhere is None
    area_reads = [s for s in statements if "FROM area" in " ".join(s.split())]
    assert len(area_reads) == 1  # only the unknown code was asked of the store

    renamed = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    for feature in renamed["features"]:
        if feature["properties"]["code"] == OTHER_GRID:
            feature["properties"]["name"] = "外滩第二网格"
    import_geojson(db.sessions, renamed, now=clock.now())
    with db.sessions() as session:
        assert reference.area(session, OTHER_GRID).name == "外滩第二网格"
