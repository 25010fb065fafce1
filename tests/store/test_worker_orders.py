"""Accept, return, duty and deactivation on a real store (SQLite and PostgreSQL), races included."""

from __future__ import annotations

import threading
from datetime import timedelta
from concurrent.futures import ThreadPoolExecutor
import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case, CaseEvent, Notification, NotificationStatus, Person
from models.work import CaseTask, Escalation, OfferStatus, TaskStatus, WorkOffer
from services import invitations, work
from services.context import ServiceContext
from services.db import transaction
from tests.worker_support import STREET, add_supervisor, add_worker, make_ctx, picture, queued, report
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def offers_of(db, case_id: int) -> dict[int, WorkOffer]:
    with db.sessions() as s:
        return {o.worker_id: o for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id))}


def case_of(db, case_id: int) -> Case:
    with db.sessions() as s:
        return s.get(Case, case_id)


def events_of(db, case_id: int) -> list[tuple[str, str | None, str, str | None]]:
    with db.sessions() as s:
        rows = s.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)).all()
        return [(e.action, e.from_status, e.to_status, e.note) for e in rows]


def race(calls: list) -> list:  # noqa: ANN001
    """Run the calls at the same moment in threads; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))

    def run(call):  # noqa: ANN001, ANN202
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test compares
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.stuck_cases_expected  # it frees the workers between rounds by marking tasks done by hand
def test_three_workers_race_for_one_order_and_exactly_one_wins(ctx, db, clock) -> None:
    workers = [add_worker(db.sessions, clock.now(), 600 + i) for i in range(3)]
    for _round in range(4):  # several rounds: a lucky interleaving must not hide a lost update
        case = report(ctx)
        offers = offers_of(db, case.id)
        results = race([lambda w=w: work.accept_offer(ctx, offer_id=offers[w].id, worker_id=w) for w in workers])
        winners = [r for r in results if isinstance(r, work.AcceptResult)]
        losers = [r for r in results if isinstance(r, work.OfferUnavailable)]
        assert len(winners) == 1 and len(losers) == 2, results
        assert all(r.why == OfferStatus.TAKEN for r in losers)
        winner = workers[results.index(winners[0])]
        stored = case_of(db, case.id)
        assert (stored.status, stored.handler_id, stored.assignee_id) == (Status.IN_PROGRESS, winner, winner)
        assert [e[0] for e in events_of(db, case.id)].count("accept") == 1
        assert {w: o.status for w, o in offers_of(db, case.id).items()} == {
            w: OfferStatus.ACCEPTED if w == winner else OfferStatus.TAKEN for w in workers}
        # The losers never saw the offer (nothing was sent yet): it is taken out of their queue.
        for loser in set(workers) - {winner}:
            with db.sessions() as s:
                left = s.exec(select(Notification).where(Notification.chat_id == 600 + workers.index(loser),
                                                         Notification.case_id == case.id)).all()
            assert left == []
        # Free the workers again for the next round.
        with transaction(db.sessions) as s:
            s.execute(CaseTask.__table__.update().values(status=TaskStatus.DONE))


def test_a_double_tap_accepts_once(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 611)
    case = report(ctx)
    offer = offers_of(db, case.id)[worker]
    results = race([lambda: work.accept_offer(ctx, offer_id=offer.id, worker_id=worker)] * 2)
    assert sorted(r.outcome for r in results) == [work.AcceptOutcome.ACCEPTED, work.AcceptOutcome.ALREADY_YOURS]
    assert [e[0] for e in events_of(db, case.id)].count("accept") == 1


def test_a_sent_offer_is_edited_to_say_it_was_taken(ctx, db, clock) -> None:
    first, second = add_worker(db.sessions, clock.now(), 621), add_worker(db.sessions, clock.now(), 622)
    case = report(ctx)
    offers = offers_of(db, case.id)
    with transaction(db.sessions) as s:  # as the sender records a delivered message
        row = s.get(Notification, offers[second].message_notification_id)
        row.status, row.telegram_message_id = NotificationStatus.SENT, 77
    work.accept_offer(ctx, offer_id=offers[first].id, worker_id=first)
    edits = queued(db.sessions, 622, "editMessageText")
    assert [(e.payload["message_id"], e.payload["text"]) for e in edits] == [
        (77, f"Work order {case.number} was taken by another worker. No action needed.")]
    assert "reply_markup" not in edits[0].payload  # the buttons go with the edit
    assert [n.method for n in queued(db.sessions, 622)] == ["sendMessage", "editMessageText"]


def test_a_sent_photo_order_gets_its_caption_edited_and_an_unsent_one_is_unqueued(ctx, db, clock) -> None:
    first, second, third = (add_worker(db.sessions, clock.now(), 624 + i) for i in range(3))
    case = report(ctx, photo=picture(3))
    offers = offers_of(db, case.id)
    with transaction(db.sessions) as s:  # the second worker's order was delivered, the third's not yet
        row = s.get(Notification, offers[second].message_notification_id)
        row.status, row.telegram_message_id = NotificationStatus.SENT, 78
    work.accept_offer(ctx, offer_id=offers[first].id, worker_id=first)
    [edit] = queued(db.sessions, 625, "editMessageCaption")
    assert edit.payload == {"message_id": 78, "parse_mode": "HTML",
                            "caption": f"Work order {case.number} was taken by another worker. No action needed."}
    assert [n.method for n in queued(db.sessions, 625)] == ["sendPhoto", "editMessageCaption"]
    assert queued(db.sessions, 626) == []  # never seen: nothing to correct


def test_returns_need_a_reason_and_go_back_to_dispatch_without_the_returner(ctx, db, clock) -> None:
    w1, w2, w3 = (add_worker(db.sessions, clock.now(), 630 + i) for i in range(3))
    add_worker(db.sessions, clock.now(), 633)  # the fourth: beyond the offer limit at first
    case = report(ctx)
    offer = offers_of(db, case.id)[w1]
    work.accept_offer(ctx, offer_id=offer.id, worker_id=w1)
    before = events_of(db, case.id)
    with pytest.raises(work.ReasonRequired):
        work.return_order(ctx, worker_id=w1, offer_id=offer.id, reason="   ")
    assert events_of(db, case.id) == before

    clock.advance(minutes=3)
    result = work.return_order(ctx, worker_id=w1, offer_id=offer.id, reason="Not our department: it is a fire lane")
    assert result.reoffered == 3
    assert events_of(db, case.id)[-2:] == [
        ("return", "in_progress", "returned", "Not our department: it is a fire lane"),
        ("dispatch", "returned", "dispatched", None)]
    stored = case_of(db, case.id)
    assert (stored.status, stored.handler_id, stored.assignee_id) == (Status.DISPATCHED, None, None)
    reoffered = {w for w, o in offers_of(db, case.id).items() if o.status == OfferStatus.OPEN}
    assert w1 not in reoffered and len(reoffered) == 3
    assert offers_of(db, case.id)[w1].status == OfferStatus.RETURNED
    assert offers_of(db, case.id)[w1].note == "Not our department: it is a fire lane"


def test_declines_by_every_offered_worker_return_the_case_and_escalate(ctx, db, clock) -> None:
    w1, w2 = add_worker(db.sessions, clock.now(), 641), add_worker(db.sessions, clock.now(), 642)
    boss = add_supervisor(db.sessions, clock.now(), 643)
    case = report(ctx)
    offers = offers_of(db, case.id)
    first = work.return_order(ctx, worker_id=w1, offer_id=offers[w1].id, reason="On sick leave today")
    assert first.still_offered and case_of(db, case.id).status == Status.DISPATCHED
    assert events_of(db, case.id)[-1] == ("return", "dispatched", "dispatched",
                                          "greening_appearance: On sick leave today")
    second = work.return_order(ctx, worker_id=w2, offer_id=offers[w2].id, reason="Equipment broken")
    assert (second.still_offered, second.reoffered) == (False, 0)
    assert case_of(db, case.id).status == Status.RETURNED
    with db.sessions() as s:
        assert s.exec(select(Escalation)).one().notified_person_ids == [boss]
        assert s.exec(select(CaseTask)).one().status == TaskStatus.WAITING


def test_going_off_duty_passes_open_offers_to_others(ctx, db, clock) -> None:
    w1 = add_worker(db.sessions, clock.now(), 651)
    case = report(ctx)
    w2 = add_worker(db.sessions, clock.now(), 652)
    result = work.set_duty(ctx, person_id=w1)
    assert (result.on_duty, result.withdrawn) == (False, 1)
    offers = offers_of(db, case.id)
    assert (offers[w1].status, offers[w2].status) == (OfferStatus.WITHDRAWN, OfferStatus.OPEN)
    with db.sessions() as s:
        assert s.get(Person, w1).on_duty is False


def test_deactivation_sends_held_and_offered_orders_back_to_dispatch(ctx, db, clock) -> None:
    leaving = add_worker(db.sessions, clock.now(), 661)
    boss = add_supervisor(db.sessions, clock.now(), 662, area_code=STREET, name="Boss Zhang")
    stranger = add_supervisor(db.sessions, clock.now(), 663, area_code="SH-XH-01")
    held = report(ctx)
    work.accept_offer(ctx, offer_id=offers_of(db, held.id)[leaving].id, worker_id=leaving)
    offered = report(ctx)
    stays = add_worker(db.sessions, clock.now(), 664)

    with pytest.raises(invitations.NotAllowed):
        invitations.deactivate_worker(ctx, worker_id=leaving, supervisor_id=stranger)
    result = invitations.deactivate_worker(ctx, worker_id=leaving, supervisor_id=boss)

    assert (result.returned, result.withdrawn) == (1, 1)
    with db.sessions() as s:
        person = s.get(Person, leaving)
        assert (person.active, person.on_duty) == (False, False)
    assert case_of(db, held.id).status == Status.DISPATCHED
    assert events_of(db, held.id)[-1] == ("reassign", "in_progress", "dispatched",
                                          "greening_appearance: worker deactivated")
    for case in (held, offered):
        assert offers_of(db, case.id)[stays].status == OfferStatus.OPEN
    assert "deactivated by Boss Zhang" in queued(db.sessions, 661)[-1].payload["text"]
    with pytest.raises(invitations.AlreadyInactive):
        invitations.deactivate_worker(ctx, worker_id=leaving, supervisor_id=boss)
    with pytest.raises(work.WorkerInactive):
        work.set_duty(ctx, person_id=leaving)


def test_tasks_list_puts_overdue_orders_first(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 671)
    slow = report(ctx, category="renovation_waste")  # a longer handling time than exposed garbage
    fast = report(ctx, category="exposed_garbage")
    assert fast.handle_due_at < slow.handle_due_at
    for case in (slow, fast):
        work.accept_offer(ctx, offer_id=offers_of(db, case.id)[worker].id, worker_id=worker)
    unanswered = report(ctx)
    view = work.open_orders(ctx, worker_id=worker)
    assert [(o.case_number, o.overdue) for o in view.held] == [(fast.number, False), (slow.number, False)]
    assert [o.case_number for o in view.offered] == [unanswered.number]
    clock.set(fast.handle_due_at + timedelta(minutes=1))  # one is overdue now, the other not yet
    view = work.open_orders(ctx, worker_id=worker)
    assert [(o.case_number, o.overdue) for o in view.held] == [(fast.number, True), (slow.number, False)]


def test_a_decline_racing_an_accept_never_redispatches_an_accepted_order(ctx, db, clock) -> None:
    for round_ in range(3):
        taker = add_worker(db.sessions, clock.now(), 680 + 2 * round_)
        decliner = add_worker(db.sessions, clock.now(), 681 + 2 * round_)
        case = report(ctx)
        offers = offers_of(db, case.id)
        results = race([
            lambda: work.accept_offer(ctx, offer_id=offers[taker].id, worker_id=taker),
            lambda: work.return_order(ctx, worker_id=decliner, offer_id=offers[decliner].id, reason="Too far away"),
        ])
        assert isinstance(results[0], work.AcceptResult), results
        assert isinstance(results[1], work.ReturnResult | work.OfferUnavailable), results
        stored = case_of(db, case.id)
        assert (stored.status, stored.assignee_id) == (Status.IN_PROGRESS, taker)
        with db.sessions() as s:
            task = s.exec(select(CaseTask).where(CaseTask.case_id == case.id)).one()
            assert (task.status, task.assignee_id) == (TaskStatus.ACCEPTED, taker)
        assert {w: o.status for w, o in offers_of(db, case.id).items()}[taker] == OfferStatus.ACCEPTED
        assert len(offers_of(db, case.id)) == 2  # nobody else was offered it meanwhile
        with transaction(db.sessions) as s:  # both off duty: the next round has fresh workers
            for person in s.exec(select(Person).where(Person.id.in_([taker, decliner]))):
                person.on_duty = False
