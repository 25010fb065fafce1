"""Extensions, shelving, reassign/take over and scope, on a real store, with the fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.supervision import EscalationStep, Extension, ExtensionStatus
from models.tables import Case
from models.work import WorkOffer
from services import escalation, extensions, work
from tests.worker_support import GRID, STREET, add_supervisor, add_worker, make_ctx, queued, report

WORKER, OTHER_WORKER, SUP, FOREIGN_SUP = 601, 602, 603, 604


@pytest.fixture
def ctx(db, clock, tmp_path):
    ctx = make_ctx(db.sessions, clock, tmp_path)
    from tests.store.test_escalation_ladder import working_units

    working_units(db)
    now = clock.now()
    ctx.ids = {
        "worker": add_worker(db.sessions, now, WORKER),
        "other": add_worker(db.sessions, now, OTHER_WORKER, on_duty=False),
        "sup": add_supervisor(db.sessions, now, SUP, area_code=STREET),
        "foreign": add_supervisor(db.sessions, now, FOREIGN_SUP, area_code="SH-HP-02"),
    }
    return ctx


def accepted_case(ctx, db):
    case = report(ctx)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id, WorkOffer.worker_id == ctx.ids["worker"])
                       ).one()
    work.accept_offer(ctx, offer_id=offer.id, worker_id=ctx.ids["worker"])
    return case


def load(db, case_id) -> Case:
    with db.sessions() as s:
        return s.get(Case, case_id)


def test_extension_granted_moves_the_deadline_and_starts_a_new_round(ctx, db, clock) -> None:
    case = accepted_case(ctx, db)
    old_due = load(db, case.id).handle_due_at
    extensions.request_extension(ctx, case_id=case.id, worker_id=ctx.ids["worker"], reason="waiting for a part",
                                 minutes=480)
    assert load(db, case.id).status == Status.EXTENSION_REQUESTED
    assert any("asks for more time" in n.payload["text"] for n in queued(db.sessions, SUP, "sendMessage"))
    new_due = extensions.grant_extension(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"])
    fresh = load(db, case.id)
    assert fresh.status == Status.IN_PROGRESS
    assert fresh.handle_due_at == new_due == old_due + timedelta(days=1)  # Wed 17:30 + 8 working h = Thu 17:30
    assert fresh.escalation_round == 1 and fresh.next_escalation_at is not None
    with db.sessions() as s:
        ext = s.exec(select(Extension)).one()
    assert ext.status == ExtensionStatus.GRANTED and ext.new_due_at == new_due
    assert any("extension granted" in n.payload["text"] for n in queued(db.sessions, WORKER, "sendMessage"))
    # The old deadline passes: nothing fires, the clock now counts to the new one.
    clock.set(old_due + timedelta(minutes=1))
    escalation.sweep(ctx)
    with db.sessions() as s:
        assert [r.step for r in s.exec(select(EscalationStep)).all() if r.step.startswith("handle")] == []


def test_extension_refused_keeps_the_deadline(ctx, db) -> None:
    case = accepted_case(ctx, db)
    due = load(db, case.id).handle_due_at
    extensions.request_extension(ctx, case_id=case.id, worker_id=ctx.ids["worker"], reason="rain", minutes=240)
    with pytest.raises(extensions.ReasonRequired):
        extensions.refuse_extension(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], reason="  ")
    extensions.refuse_extension(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], reason="rain stops at noon")
    fresh = load(db, case.id)
    assert fresh.status == Status.IN_PROGRESS and fresh.handle_due_at == due
    with db.sessions() as s:
        assert s.exec(select(Extension)).one().status == ExtensionStatus.REFUSED


def test_only_the_holder_may_ask_for_an_extension(ctx, db) -> None:
    case = accepted_case(ctx, db)
    with pytest.raises(extensions.NotYourCase):
        extensions.request_extension(ctx, case_id=case.id, worker_id=ctx.ids["other"], reason="x", minutes=60)


def test_shelving_stops_the_clock_and_unshelving_restarts_it(ctx, db, clock) -> None:
    case = accepted_case(ctx, db)
    before = load(db, case.id)
    review = clock.now() + timedelta(days=7)
    extensions.shelve(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], reason="needs the district's budget",
                      review_at=review)
    assert load(db, case.id).status == Status.SHELVED
    clock.set(before.handle_due_at + timedelta(days=2))  # far past the deadline: no ping while shelved
    assert escalation.sweep(ctx).fired == 0
    clock.set(review + timedelta(minutes=1))
    assert escalation.sweep(ctx).reviews == 1
    assert escalation.sweep(ctx).reviews == 0
    assert any("due for review" in n.payload["text"] for n in queued(db.sessions, SUP, "sendMessage"))
    extensions.unshelve(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"])
    after = load(db, case.id)
    assert after.status == Status.DISPATCHED  # offered again
    # The working time left when shelved (Saturday → 3 working days) is what it has again.
    assert after.handle_due_at > clock.now() + timedelta(days=2)


def test_cross_area_supervisor_is_refused_and_nothing_changes(ctx, db, clock) -> None:
    case = accepted_case(ctx, db)
    before = load(db, case.id)
    foreign = ctx.ids["foreign"]
    for call in (lambda: escalation.take_over(ctx, case_id=case.id, supervisor_id=foreign),
                 lambda: escalation.reassign(ctx, case_id=case.id, supervisor_id=foreign, worker_id=ctx.ids["other"]),
                 lambda: escalation.acknowledge(ctx, case_id=case.id, step_id=10**6, supervisor_id=foreign),
                 lambda: extensions.grant_extension(ctx, case_id=case.id, supervisor_id=foreign),
                 lambda: extensions.shelve(ctx, case_id=case.id, supervisor_id=foreign, reason="x",
                                           review_at=clock.now() + timedelta(days=1)),
                 lambda: escalation.grid_workers(ctx, case_id=case.id, supervisor_id=foreign)):
        with pytest.raises(escalation.OutsideYourArea):
            call()
    after = load(db, case.id)
    assert (after.version, after.status, after.handle_due_at) == (before.version, before.status, before.handle_due_at)


def test_reassign_offers_to_the_chosen_grid_worker_and_tells_the_holder(ctx, db) -> None:
    case = accepted_case(ctx, db)
    escalation.reassign(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], worker_id=ctx.ids["other"])
    assert load(db, case.id).status == Status.DISPATCHED
    assert any("reassigned" in n.payload["text"] for n in queued(db.sessions, WORKER, "sendMessage"))
    assert any("Work order" in n.payload.get("text", "") for n in queued(db.sessions, OTHER_WORKER, "sendMessage"))


def test_take_over_makes_the_supervisor_the_holder(ctx, db) -> None:
    case = accepted_case(ctx, db)
    escalation.take_over(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"])
    fresh = load(db, case.id)
    assert fresh.status == Status.IN_PROGRESS and fresh.handler_id == ctx.ids["sup"]
    assert fresh.assignee_id == ctx.ids["sup"]
