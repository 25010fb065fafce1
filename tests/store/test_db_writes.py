"""The hot paths' write helpers (services/db.py), on SQLite and PostgreSQL: what they store is what a
flush of the unit of work would have stored, and the session holds the row as loaded."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from models.api import InboxMessage
from models.tables import Notification, NotificationStatus, Priority
from services.db import insert_now, insert_unless_exists, transaction

AT = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)


def _notification(**kw: object) -> Notification:
    return Notification(chat_id=42, method="sendMessage", payload={"text": "工单 🆕"}, next_attempt_at=AT,
                        created_at=AT, **kw)


def test_insert_now_stores_the_row_and_the_session_holds_it_without_a_flush(db) -> None:
    with transaction(db.sessions) as session:
        row = _notification()
        session.add(row)  # added, then written at once instead of at the next flush
        insert_now(session, row)
        assert row.id is not None
        assert not session.new and not session.dirty  # nothing left for a flush to write
        assert session.get(Notification, row.id) is row
        row.payload = {"text": "🧪 [DRILL]\n工单 🆕"}  # a later change is still saved (the drill label does this)
    with db.sessions() as session:
        stored = session.get(Notification, row.id)
        assert (stored.chat_id, stored.method, stored.payload) == (42, "sendMessage", {"text": "🧪 [DRILL]\n工单 🆕"})
        assert (stored.status, stored.priority, stored.attempts) == (NotificationStatus.PENDING, Priority.REPLY, 0)
        assert stored.next_attempt_at == AT


def test_insert_now_lets_the_store_fill_a_column_left_none_and_reads_it_back(db) -> None:
    with transaction(db.sessions) as session:
        row = _notification(priority=None)  # the column's server default applies
        insert_now(session, row)
        assert row.priority == int(Priority.REPLY)  # read back on first use
    with db.sessions() as session:
        assert session.get(Notification, row.id).priority == int(Priority.REPLY)


def test_insert_unless_exists_keeps_the_first_row_and_answers_none_for_a_repeat(db) -> None:
    table = InboxMessage.__table__

    def once(payload: dict) -> object:
        with transaction(db.sessions) as session:
            return insert_unless_exists(session, table, {
                "channel": "telegram", "dedup_key": "1001", "seq": 1001, "payload": payload, "state": "pending",
                "attempts": 0, "received_at": AT}, unique=["channel", "dedup_key"], returning=table.c.id)

    first = once({"update_id": 1001, "text": "第一"})
    assert isinstance(first, int)
    assert once({"update_id": 1001, "text": "again"}) is None
    with db.sessions() as session:
        rows = session.exec(select(InboxMessage)).all()
    assert [(r.id, r.payload, r.received_at) for r in rows] == [(first, {"update_id": 1001, "text": "第一"}, AT)]
