"""New rows whose INSERTs wait for the batch (`grouped(session, new_rows=True)`, the dispatcher's), on
SQLite and PostgreSQL: keys given at once, one INSERT per table, no key taken twice, nothing kept from a
batch that fails."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import select

from models.tables import Notification, NotificationStatus
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services import grouped_writes, rows
from services.db import insert_now, transaction
from tests.worker_support import add_worker, make_ctx, report


def message(text: str, at) -> Notification:  # noqa: ANN001
    return rows.new(Notification, chat_id=501, method="sendMessage", payload={"text": text},
                    status=NotificationStatus.PENDING, priority=3, next_attempt_at=at, created_at=at)


def stored(db) -> dict[int, str]:
    with db.sessions() as s:
        return {n.id: n.payload["text"] for n in s.exec(select(Notification).order_by(Notification.id))}


@pytest.fixture
def inserts(db):
    seen: list[int] = []

    def count(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO NOTIFICATION"):
            seen.append(len(params) if executemany else 1)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", count)


def test_new_rows_get_their_keys_at_once_and_go_in_one_insert_with_their_later_changes(db, clock, inserts) -> None:
    with transaction(db.sessions) as session, grouped_writes.grouped(session, new_rows=True):
        made = [message(f"order {i}", clock.now()) for i in range(3)]
        for row in made:
            insert_now(session, row)
        assert len({row.id for row in made}) == 3 and inserts == []  # keys given, nothing written yet
        assert session.get(Notification, made[1].id) is made[1] and grouped_writes.waits(session, made[1])
        set_committed_value(made[2], "payload", {"text": "order 2, edited"})  # before its INSERT goes out
    assert len(inserts) == 1  # one statement for the three (executemany, or one multi-row INSERT)
    assert stored(db) == {made[0].id: "order 0", made[1].id: "order 1", made[2].id: "order 2, edited"}


def test_a_read_or_another_insert_of_the_table_writes_the_waiting_rows_first_and_takes_no_key_twice(db, clock) -> None:
    table = Notification.__table__
    with transaction(db.sessions) as session, grouped_writes.grouped(session, new_rows=True):
        first = message("first", clock.now())
        insert_now(session, first)
        read = session.exec(select(Notification.id).where(Notification.id == first.id)).one()
        assert read == first.id  # the read wrote it first
        second = message("second", clock.now())
        insert_now(session, second)
        session.execute(sa.insert(table), [{**{c.key: None for c in table.columns if c.key != "id"},
                                           "chat_id": 502, "method": "sendMessage", "payload": {"text": "other"},
                                           "status": "pending", "priority": 3, "attempts": 0,
                                           "next_attempt_at": clock.now(), "created_at": clock.now()}])
        third = message("third", clock.now())
        insert_now(session, third)
    texts = stored(db)
    assert sorted(texts.values()) == ["first", "other", "second", "third"]  # four rows: no key was taken twice
    assert texts[first.id] == "first" and texts[second.id] == "second" and texts[third.id] == "third"


def test_a_failed_batch_keeps_none_of_its_new_rows_and_leaves_the_session_usable(db, clock, inserts) -> None:
    with transaction(db.sessions) as session:
        with pytest.raises(RuntimeError), session.begin_nested(), grouped_writes.grouped(session, new_rows=True):
            lost = message("lost", clock.now())
            insert_now(session, lost)
            raise RuntimeError("a case of the batch failed")
        assert lost not in session
        kept = message("kept", clock.now())
        insert_now(session, kept)  # outside a block: at once; its key may be the lost one's
    assert list(stored(db).values()) == ["kept"] and inserts == [1]


def test_rows_pointing_at_rows_that_went_out_early_and_came_back_are_written_after_them(db, clock, tmp_path) -> None:
    """A read of a table mid-block writes its waiting rows; new rows of it that follow wait again, now
    behind the rows of a table that points at them. They still go first (the dispatcher's batch did this
    when a grid had two workers: their load is read from the tasks and offers the batch was making)."""
    ctx = make_ctx(db.sessions, clock, tmp_path)
    worker = add_worker(db.sessions, clock.now(), 801)
    case = report(ctx, dispatch_now=False)
    now = clock.now()

    def task(department: str) -> CaseTask:
        return rows.new(CaseTask, case_id=case.id, department_code=department, status=TaskStatus.OFFERED,
                        created_at=now, updated_at=now)

    def offer(of: CaseTask) -> WorkOffer:
        return rows.new(WorkOffer, case_id=case.id, task_id=of.id, worker_id=worker, status=OfferStatus.OPEN,
                        follow_up_notification_ids=[], created_at=now)

    with transaction(db.sessions) as session, grouped_writes.grouped(session, new_rows=True):
        first = task("test_department_a")
        insert_now(session, first)
        insert_now(session, offer(first))
        assert first.id in session.exec(select(CaseTask.id).where(CaseTask.case_id == case.id)).all()  # written now
        second = task("test_department_b")  # its INSERT now waits after the offers'
        insert_now(session, second)
        insert_now(session, offer(second))
    with db.sessions() as s:
        offered = s.exec(select(WorkOffer.task_id).where(WorkOffer.case_id == case.id).order_by(WorkOffer.id)).all()
    assert offered[-2:] == [first.id, second.id]
