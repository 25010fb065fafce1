"""The field-work services publish their domain events with the right fields (a real EventBus whose table
records every work event after the Telegram renderers have run)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from sqlmodel import select

from models.events import Event
from models.events import work as work_events
from models.events.work import DutyChanged, OfferMade, OfferRetracted, OrderAccepted, OrderReturned, RetractReason
from models.tables import Notification
from models.work import OfferStatus, WorkOffer
from onegrid.wiring import event_table
from services import work
from services.bus import EventBus
from services.context import ServiceContext
from tests.worker_support import add_worker, make_ctx, report
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)

WORK_EVENTS = [cls for _, cls in inspect.getmembers(work_events, inspect.isclass)
               if issubclass(cls, Event) and cls is not Event]


@pytest.fixture
def recorded() -> list[Event]:
    return []


@pytest.fixture
def ctx(db, clock, tmp_path, recorded) -> ServiceContext:
    ctx = make_ctx(db.sessions, clock, tmp_path)
    table = event_table()
    for cls in WORK_EVENTS:
        table.setdefault(cls, []).append(lambda _session, _ctx, event: recorded.append(event))
    return dataclasses.replace(ctx, bus=EventBus(table))


def of_type(recorded: list[Event], cls: type[Event]) -> list[Event]:
    return [e for e in recorded if type(e) is cls]


def test_accept_publishes_order_accepted_and_retracts_the_other_offers(ctx, db, clock, recorded) -> None:
    first, second = add_worker(db.sessions, clock.now(), 701), add_worker(db.sessions, clock.now(), 702)
    case = report(ctx)
    with db.sessions() as s:
        offers = {o.worker_id: o for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id))}
    made = of_type(recorded, OfferMade)
    assert {(e.offer_id, e.worker_id) for e in made} == {(offers[first].id, first), (offers[second].id, second)}
    assert {(e.case_id, e.task_id) for e in made} == {(case.id, offers[first].task_id)}
    recorded.clear()

    result = work.accept_offer(ctx, offer_id=offers[first].id, worker_id=first, message_id=4242)

    assert result.outcome is work.AcceptOutcome.ACCEPTED
    assert of_type(recorded, OrderAccepted) == [OrderAccepted(
        offer_id=offers[first].id, case_id=case.id, task_id=offers[first].task_id, worker_id=first,
        actor_message_id=4242)]
    assert of_type(recorded, OfferRetracted) == [OfferRetracted(
        offer_id=offers[second].id, case_id=case.id, case_number=case.number, worker_id=second,
        reason=RetractReason.TAKEN)]
    # The event reached the Telegram renderer in the same transaction: the pressed message is edited.
    with db.sessions() as s:
        edits = s.exec(select(Notification).where(Notification.chat_id == 701,
                                                  Notification.method == "editMessageText")).all()
    assert [e.payload["message_id"] for e in edits] == [4242]

    recorded.clear()
    again = work.accept_offer(ctx, offer_id=offers[first].id, worker_id=first, message_id=4242)
    assert again.outcome is work.AcceptOutcome.ALREADY_YOURS and recorded == []


def test_return_and_duty_publish_their_events(ctx, db, clock, recorded) -> None:
    worker = add_worker(db.sessions, clock.now(), 711)
    case = report(ctx)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id)).one()
    recorded.clear()

    work.return_order(ctx, worker_id=worker, reason="  Wrong   department ", offer_id=offer.id, message_id=9)

    assert of_type(recorded, OrderReturned) == [OrderReturned(
        case_id=case.id, task_id=offer.task_id, offer_id=offer.id, worker_id=worker, reason="Wrong department",
        actor_message_id=9)]
    with db.sessions() as s:
        assert s.get(WorkOffer, offer.id).status == OfferStatus.DECLINED

    recorded.clear()
    work.set_duty(ctx, person_id=worker, on_duty=False)
    assert of_type(recorded, DutyChanged) == [DutyChanged(worker_id=worker, on_duty=False, withdrawn=0)]
