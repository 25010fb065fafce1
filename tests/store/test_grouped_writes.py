"""Rows a batch writes together (services/grouped_writes.py), on SQLite and PostgreSQL: nothing read
around them, nothing kept from a batch that fails, and one INSERT per statement for the batch."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import func, select

from models.tables import Case, CaseEvent
from services import grouped_writes
from services.cases import _INSERT_EVENTS
from services.context import ServiceContext
from services.db import transaction
from tests.worker_support import make_ctx, report
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def note(case_id: int, text: str, at) -> dict:  # noqa: ANN001
    return {"case_id": case_id, "actor_id": None, "actor_role": "system", "action": "progress",
            "from_status": None, "to_status": "dispatched", "note": text, "at": at}


def notes(db, case_id: int) -> list[str]:
    with db.sessions() as s:
        return list(s.exec(select(CaseEvent.note).where(CaseEvent.case_id == case_id, CaseEvent.action == "progress")
                           .order_by(CaseEvent.id)))


def test_waiting_rows_are_written_before_anything_reads_their_table_and_in_one_insert(ctx, db, clock) -> None:
    case = report(ctx)
    inserts: list[int] = []

    def count(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO CASE_EVENT"):
            inserts.append(len(params) if executemany else 1)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        with transaction(db.sessions) as session, grouped_writes.grouped(session):
            grouped_writes.write(session, _INSERT_EVENTS, [note(case.id, "one", clock.now())])
            grouped_writes.write(session, _INSERT_EVENTS, [note(case.id, "two", clock.now())])
            assert inserts == []  # waiting
            seen = session.exec(select(func.count()).select_from(CaseEvent).where(
                CaseEvent.case_id == case.id, CaseEvent.action == "progress")).one()
            assert seen == 2  # the read wrote them first
            grouped_writes.write(session, _INSERT_EVENTS, [note(case.id, "three", clock.now())])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert inserts == [2, 1]
    assert notes(db, case.id) == ["one", "two", "three"]


def test_a_batch_that_fails_keeps_none_of_its_waiting_rows(ctx, db, clock) -> None:
    case = report(ctx)
    with pytest.raises(RuntimeError), transaction(db.sessions) as session, grouped_writes.grouped(session):
        grouped_writes.write(session, _INSERT_EVENTS, [note(case.id, "lost", clock.now())])
        raise RuntimeError("the batch failed")
    assert notes(db, case.id) == []


def test_outside_a_block_a_row_is_written_at_once(ctx, db, clock) -> None:
    case = report(ctx)
    with transaction(db.sessions) as session:
        grouped_writes.write(session, _INSERT_EVENTS, [note(case.id, "now", clock.now())])
        assert session.info.get("grouped_writes") is None
        seen = session.execute(sa.text("SELECT count(*) FROM case_event WHERE note = 'now'")).scalar_one()
        assert seen == 1  # even a raw statement sees it: nothing waited
    assert notes(db, case.id) == ["now"]


_DESCRIBE = sa.update(Case.__table__).where(Case.__table__.c.id == sa.bindparam("case_id"))


def test_a_waiting_update_never_overtakes_a_later_change_of_the_same_row(ctx, db) -> None:
    case = report(ctx, description="as reported")
    with transaction(db.sessions) as session, grouped_writes.grouped(session):
        loaded = session.get(Case, case.id)
        grouped_writes.write(session, _DESCRIBE, [{"case_id": case.id, "description": "older"}])
        loaded.description = "newer"  # the unit of work's change, asked for after the waiting UPDATE
        session.flush()
    with db.sessions() as s:
        assert s.get(Case, case.id).description == "newer"
    with transaction(db.sessions) as session, grouped_writes.grouped(session):
        grouped_writes.write(session, _DESCRIBE, [{"case_id": case.id, "description": "first"}])
        grouped_writes.write(session, sa.update(Case.__table__).where(Case.__table__.c.id == case.id),
                             [{"description": "second"}])  # another statement for the same row
        grouped_writes.write(session, _DESCRIBE, [{"case_id": case.id, "description": "third"}])
    with db.sessions() as s:
        assert s.get(Case, case.id).description == "third"
