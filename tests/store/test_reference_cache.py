"""The reference cache (services/reference.py) on SQLite and PostgreSQL: an edit is seen by the next report,
in this process and in another one on the same store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from models.api import ClearRule
from services.cases import UnknownCategory
from services.catalogue import set_category_fields
from services.db import make_engine, make_session_factory
from services.intake_rules import intake_rule, set_intake_rule
from tests.worker_support import make_ctx, report


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
