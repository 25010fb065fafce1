"""The services move tasks and offers only by the steps of their tables (models/work_lifecycles.py): a step
the table does not allow is refused at the real call site, and nothing is written."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import select

from models.events import Event
from models.events.work import OfferRetracted, RetractReason
from models.lifecycle import Status
from models.state_table import IllegalStep
from models.tables import Case, Notification
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from models.work_lifecycles import OfferAction
from onegrid.wiring import event_table
from services import dispatch, work
from services.bus import EventBus
from services.context import ServiceContext
from services.db import transaction
from tests.worker_support import add_worker, make_ctx, report
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


@pytest.fixture
def recorded() -> list[Event]:
    return []


@pytest.fixture
def ctx(db, clock, tmp_path, recorded) -> ServiceContext:
    ctx = make_ctx(db.sessions, clock, tmp_path)
    table = event_table()
    table.setdefault(OfferRetracted, []).append(lambda _session, _ctx, event: recorded.append(event))
    return dataclasses.replace(ctx, bus=EventBus(table))


def rows(db, case_id: int) -> tuple[str, list[str], dict[int, str], int]:
    """The case's status, its tasks' statuses, its offers' statuses by worker, and how many notifications exist."""
    with db.sessions() as s:
        return (s.get(Case, case_id).status,
                [t.status for t in s.exec(select(CaseTask).where(CaseTask.case_id == case_id))],
                {o.worker_id: o.status for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id))},
                len(s.exec(select(Notification)).all()))


@pytest.mark.stuck_cases_expected  # it builds the inconsistent state (a done task with an open offer) by hand
def test_accepting_an_offer_of_a_task_already_done_is_refused_and_changes_nothing(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 801)
    case = report(ctx)
    with transaction(db.sessions) as s:  # the task finished by a path that left this offer open
        s.execute(CaseTask.__table__.update().where(CaseTask.case_id == case.id).values(status=TaskStatus.DONE))
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.worker_id == worker)).one()
    before = rows(db, case.id)

    with pytest.raises(work.OfferUnavailable):
        work.accept_offer(ctx, offer_id=offer.id, worker_id=worker)

    assert rows(db, case.id) == before
    assert before[1] == [TaskStatus.DONE] and before[2] == {worker: OfferStatus.OPEN}


def test_retracting_an_offer_already_taken_raises_and_publishes_nothing(ctx, db, clock, recorded) -> None:
    first, second = add_worker(db.sessions, clock.now(), 811), add_worker(db.sessions, clock.now(), 812)
    case = report(ctx)
    with db.sessions() as s:
        offers = {o.worker_id: o for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id))}
    work.accept_offer(ctx, offer_id=offers[first].id, worker_id=first)
    before = rows(db, case.id)
    assert before[2] == {first: OfferStatus.ACCEPTED, second: OfferStatus.TAKEN}
    recorded.clear()

    with pytest.raises(IllegalStep), transaction(db.sessions) as s:
        dispatch.retract_offer(s, ctx, s.get(WorkOffer, offers[second].id), action=OfferAction.WITHDRAW,
                               reason=RetractReason.OFF_DUTY)

    assert recorded == []
    assert rows(db, case.id) == before


def test_returning_an_order_held_without_an_offer_row_records_an_accepted_offer_returned(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 831)
    case = report(ctx)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.worker_id == worker)).one()
    work.accept_offer(ctx, offer_id=offer.id, worker_id=worker)
    with transaction(db.sessions) as s:  # as a supervisor's own order: held, no offer row
        s.delete(s.get(WorkOffer, offer.id))
        task_id = s.exec(select(CaseTask.id).where(CaseTask.case_id == case.id)).one()

    work.return_order(ctx, worker_id=worker, task_id=task_id, reason="Wrong street")

    with db.sessions() as s:
        returned = s.exec(select(WorkOffer).where(WorkOffer.worker_id == worker)).one()
        assert (returned.status, returned.note) == (OfferStatus.RETURNED, "Wrong street")
        assert returned.closed_at is not None
        assert s.get(Case, case.id).status == Status.RETURNED
