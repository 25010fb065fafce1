"""Verification (核查) and closure (结案) through the real bot: approve, reject for rework, no self-verification;
and a worker's own patrol report."""

from __future__ import annotations

import asyncio
import copy
import itertools

from sqlmodel import select

from bot.emulator.users import _chat_instance
from models.lifecycle import Status
from models.tables import Case, CaseSource
from models.work import Completion, CompletionStatus, WorkOffer
from services import work
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    STREET,
    add_person,
    add_supervisor,
    add_worker,
    answer_to,
    button,
    button_texts,
    emulator,
    offset,
    picture,
    report,
    settle,
    world,
)
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)

_forged_ids = itertools.count(1)


async def submitted_case(world, emulator, db, clock, *, worker_roles=("worker",), worker_id=9201, boss_id=9202):  # noqa: ANN001, ANN201
    """A case whose worker accepted it in chat and submitted a good proof; the supervisor's card has arrived."""
    person = add_person(db.sessions, clock.now(), telegram_user_id=worker_id, roles=list(worker_roles),
                        area_code="SH-HP-01-001", department_code="greening_appearance", on_duty=True, name="Wang Wei")
    add_supervisor(db.sessions, clock.now(), boss_id, area_code=STREET, name="Boss Li")
    worker = emulator.user(worker_id, first_name="Wang", language_code="en")
    boss = emulator.user(boss_id, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await worker.wait_inbox(1)
    await worker.press(order, button(order, "wo:a:"))
    await answer_to(emulator, worker_id)
    await emulator.wait_for(lambda: worker.inbox[0]["text"].startswith("✅ You accepted"))
    await asyncio.to_thread(proof, world.ctx, db, case, person, clock, seed=500)
    await boss.wait_inbox(1)
    settle(clock)
    await boss.wait_inbox(2)  # the card, then the proof photo a second later
    return worker, boss, case, person


def proof(ctx, db, case: Case, worker_id: int, clock, *, seed: int) -> None:  # noqa: ANN001
    """The worker's side of Complete, through the same services the chat uses."""
    with db.sessions() as s:
        task_id = s.exec(select(WorkOffer.task_id).where(WorkOffer.case_id == case.id)).first()
    draft = work.start_completion(ctx, task_id=task_id, worker_id=worker_id)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker_id, data=picture(seed))
    lat, lon = offset(case.lat, case.lon, north_m=15)
    work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker_id,
                         fix=work.LocationFix(lat=lat, lon=lon, sent_at=clock.now(), accuracy_m=10, live_period=600))


def case_row(db, case_id: int) -> Case:  # noqa: ANN001
    with db.sessions() as s:
        return s.get(Case, case_id)


async def test_approve_closes_the_case_and_tells_the_worker(world, emulator, db, clock) -> None:
    worker, boss, case, worker_id = await submitted_case(world, emulator, db, clock)
    card = boss.inbox[0]
    await boss.press(card, button(card, "sv:a:"))
    [answer] = await answer_to(emulator, 9202)
    assert answer["text"] == f"Case {case.number} approved and closed."
    await emulator.wait_for(lambda: boss.inbox[0]["text"].startswith("✅"))
    assert boss.inbox[0]["text"] == f"✅ Case {case.number} approved and closed by Boss Li (11-21 10:00)."
    assert button_texts(boss.inbox[0]) == []
    await emulator.wait_for(lambda: any("verified and closed" in m.get("text", "") for m in worker.inbox))
    assert worker.inbox[-1]["text"] == f"✅ Case {case.number} was verified and closed. Thank you!"
    stored = case_row(db, case.id)
    assert (stored.status, stored.handler_id, stored.closed_at is not None) == (Status.CLOSED, worker_id, True)
    with db.sessions() as s:
        assert s.exec(select(Completion)).one().status == CompletionStatus.APPROVED


async def test_reject_sends_it_back_for_rework_until_a_new_proof_is_approved(world, emulator, db, clock) -> None:
    worker, boss, case, worker_id = await submitted_case(world, emulator, db, clock)
    card = boss.inbox[0]
    await boss.press(card, button(card, "sv:r:"))
    [_, _, prompt] = await boss.wait_inbox(3)
    assert prompt["text"] == "What must be redone? Send the reason in one message; the worker will see it."
    await boss.send_text("Bags are still next to the wall")
    await emulator.wait_for(lambda: any(m.get("text", "").startswith(f"Case {case.number} sent back")
                                        for m in boss.inbox))
    await emulator.wait_for(lambda: boss.inbox[0]["text"].startswith("🔁"))
    assert boss.inbox[0]["text"] == (f"🔁 Case {case.number} sent back for rework by Boss Li: "
                                     "Bags are still next to the wall")
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith("🔁 Rework"))
    rework = worker.inbox[-1]
    assert rework["text"] == (f"🔁 Rework: case {case.number} was not accepted by the supervisor.\n"
                              "Reason: Bags are still next to the wall\n"
                              "Fix it, then press Complete and send new photos and your location.")
    assert case_row(db, case.id).status == Status.REWORK

    # The worker redoes it in chat: Complete, a new photo, the location; the old photo would be refused.
    before = len(worker.inbox)
    await worker.press(rework, button(rework, "wt:c:"))
    await emulator.wait_for(lambda: len(worker.inbox) > before)
    await worker.send_photo(picture(500))
    await emulator.wait_for(lambda: "already used as proof" in worker.inbox[-1].get("text", ""))
    await worker.send_photo(picture(501))
    # The receipt asks for the location: no "done with photos" step.
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith("Photo 1 of 3"))
    await worker.send_location(*offset(case.lat, case.lon, east_m=30), horizontal_accuracy=9, live_period=600)
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith("✅ Proof submitted"))

    await emulator.wait_for(lambda: sum(m.get("text", "").startswith("🔍") for m in boss.inbox) == 1
                            and boss.inbox[-1].get("text", "").startswith("🔍"), timeout=15)
    new_card = boss.inbox[-1]
    await boss.press(new_card, button(new_card, "sv:a:"))
    await answer_to(emulator, 9202, 2)
    await emulator.wait_for(lambda: case_row(db, case.id).status == Status.CLOSED)
    with db.sessions() as s:
        rounds = [c.status for c in s.exec(select(Completion).order_by(Completion.id))]
    assert rounds == [CompletionStatus.REJECTED, CompletionStatus.APPROVED]
    del worker_id


async def test_a_worker_cannot_verify_their_own_case(world, emulator, db, clock) -> None:
    # Wang is a worker and a supervisor of the grid; he handled the case, so his card never comes,
    worker, boss, case, _ = await submitted_case(world, emulator, db, clock, worker_roles=("supervisor", "worker"))
    assert not any(m.get("text", "").startswith("🔍") for m in worker.inbox)
    # and pressing a forged Approve button is refused.
    version = case_row(db, case.id).version
    stored = emulator.store.get(worker.id, worker.inbox[0]["message_id"])
    query_id = f"forged{next(_forged_ids)}"
    emulator.callback_queries[query_id] = {"user_id": worker.id, "data": f"sv:a:{case.id}:{version}",
                                           "chat_id": worker.id, "message_id": stored["message_id"],
                                           "answered": False}
    emulator.queue_update("callback_query", {
        "id": query_id, "from": worker.as_user(), "message": copy.deepcopy(stored),
        "chat_instance": _chat_instance(worker.id), "data": f"sv:a:{case.id}:{version}"})
    [_accept, answer] = await answer_to(emulator, worker.id, 2)
    assert answer["text"] == "You handled this case yourself, so you cannot verify it. Another supervisor will."
    assert answer["show_alert"] is True
    stored_case = case_row(db, case.id)
    assert (stored_case.status, stored_case.verifier_id) == (Status.AWAITING_VERIFICATION, None)
    assert boss.inbox[0]["text"].startswith("🔍")  # the other supervisor's card is still open


async def test_a_patrol_report_is_the_reporting_workers_at_once(world, emulator, db, clock) -> None:
    patroller = add_worker(db.sessions, clock.now(), 9231)
    add_worker(db.sessions, clock.now(), 9232)
    me = emulator.user(9231, first_name="Patrol", language_code="en")
    case = await asyncio.to_thread(report, world.ctx, reporter_id=patroller, source=CaseSource.PATROL,
                                   description="Overflowing bins seen on patrol")
    [assigned] = await me.wait_inbox(1)
    assert assigned["text"].startswith(f"📋 Your patrol report is case {case.number}, assigned to you.")
    assert "Source: patrol" in assigned["text"] and assigned["text"].endswith(
        "Press Complete when the problem is solved.")
    assert button_texts(assigned) == ["📸 Complete", "↩️ Return to dispatcher", "📝 Progress note"]
    stored = case_row(db, case.id)
    assert (stored.status, stored.handler_id, stored.source) == (Status.IN_PROGRESS, patroller, CaseSource.PATROL)
    await me.press(assigned, button(assigned, "wt:c:"))
    [_, prompt] = await me.wait_inbox(2)
    assert prompt["text"] == f"Case {case.number}: send 1 to 3 photos of the finished work."
    assert emulator.sent(9232) == []
