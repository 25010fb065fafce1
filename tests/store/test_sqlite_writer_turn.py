"""SQLite transactions of one process take turns on a lock (services/db.py): whatever ends a transaction,
the next one gets its turn, and a thread never waits for one another thread abandoned."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from services.db import make_engine


def _start(engine: sa.Engine, query: str, into: list[int]) -> threading.Thread:
    """A thread running `query` in a transaction of its own, its result appended to `into`."""
    def work() -> None:
        with engine.begin() as conn:
            into.append(conn.execute(sa.text(query)).scalar_one())

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _in_another_thread(engine: sa.Engine) -> list[int]:
    """A transaction in another thread; its result, or nothing if it could not start within 10 s (its wait
    for the turn is 30 s, so an empty list means the turn was never given back)."""
    result: list[int] = []
    _start(engine, "SELECT 1", result).join(timeout=10)
    return result


def test_commit_rollback_close_and_invalidate_each_give_the_turn_back(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turn.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
    assert _in_another_thread(engine) == [1]  # after a commit

    conn = engine.connect()
    tx = conn.begin()
    conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    tx.rollback()
    assert _in_another_thread(engine) == [1]  # after a rollback
    conn.begin()
    conn.close()  # returned to the pool in the middle of a transaction
    assert _in_another_thread(engine) == [1]

    conn = engine.connect()
    conn.begin()
    conn.invalidate()  # thrown away after an error, its transaction never ended
    assert _in_another_thread(engine) == [1]
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 0  # the rollback held
    engine.dispose()


def test_a_second_writer_waits_for_the_first_and_sees_its_commit(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'order.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
    seen: list[int] = []
    first = engine.connect()
    tx = first.begin()
    first.execute(sa.text("INSERT INTO t VALUES (1)"))
    thread = _start(engine, "SELECT count(*) FROM t", seen)
    thread.join(timeout=0.2)
    assert thread.is_alive() and seen == []  # it waits for its turn while the first is open
    tx.commit()
    first.close()
    thread.join(timeout=10)
    assert seen == [1]
    engine.dispose()
