"""The digest publishes one DigestReady per supervisor with the right fields (a real EventBus with a
recording table), and the Telegram renderer leaves no chart file behind for a digest that rolled back."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.events import Event
from models.events.staff import DigestReady, Overdue
from models.tables import Notification, Person
from services import digest
from services.bus import EventBus
from services.db import transaction
from tests.store.test_digest import EN_SUP, TODAY, ZH_SUP, OTHER_STREET, ctx, history, local, series, supervisors  # noqa: F401
from tests.worker_support import STREET


def person_id(db, chat_id: int) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(Person.id).where(Person.telegram_user_id == chat_id)).one()


def test_run_due_publishes_each_supervisors_digest(db, ctx, clock, history, supervisors) -> None:  # noqa: F811
    recorded: list[Event] = []
    ctx.bus = EventBus({DigestReady: [lambda _s, _c, event: recorded.append(event)]})
    clock.set(local(21, 18, 0))
    assert digest.run_due(ctx) == 2
    street, other = series(db, STREET), series(db, OTHER_STREET)
    with db.sessions() as s:
        street_overdue = digest.top_overdue(s, area_code=STREET, now=clock.now())
        other_overdue = digest.top_overdue(s, area_code=OTHER_STREET, now=clock.now())
    assert recorded == [
        DigestReady(person_id=person_id(db, EN_SUP), day=TODAY, series=street, overdue=street_overdue),
        DigestReady(person_id=person_id(db, ZH_SUP), day=TODAY, series=other, overdue=other_overdue),
    ]
    assert [c.number for c in street_overdue.cases] == [history["A"].number]
    with db.sessions() as s:  # with no renderer in the table, nothing is queued
        assert s.exec(select(Notification)).all() == []


def test_a_rolled_back_digest_leaves_no_chart(db, ctx, clock, history, supervisors) -> None:  # noqa: F811
    sup = person_id(db, EN_SUP)
    chart = ctx.settings.data_dir / f"digests/20261121/{sup}.png"
    with pytest.raises(RuntimeError), transaction(db.sessions) as s:
        ctx.publish(s, DigestReady(person_id=sup, day=TODAY, series=series(db), overdue=Overdue(0, ())))
        assert chart.exists()
        raise RuntimeError("a later step failed")
    assert not chart.exists()
    with db.sessions() as s:
        assert s.exec(select(Notification)).all() == []
