"""Extensions, shelving, reassign/take over (and completing after it), forum topics, staff menus and scope,
on a real store, with the fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from models.events.resident import ReplyTo
from models.lifecycle import Status
from models.supervision import EscalationStep, Extension, ExtensionStatus, SupervisorTopic
from models.tables import Area, Case, CaseEvent, Notification, NotificationStatus, Person
from models.work import CaseTask, TaskStatus, WorkOffer
from services import escalation, extensions, residents, staff_menus, supervision_access, takeover, topics, verification, work
from services.db import transaction
from tests.worker_support import (
    GRID,
    STREET,
    add_person,
    add_supervisor,
    add_worker,
    make_ctx,
    offset,
    picture,
    queued,
    report,
)
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)

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
    for call in (lambda: takeover.take_over(ctx, case_id=case.id, supervisor_id=foreign),
                 lambda: takeover.reassign(ctx, case_id=case.id, supervisor_id=foreign, worker_id=ctx.ids["other"]),
                 lambda: escalation.acknowledge(ctx, case_id=case.id, step_id=10**6, supervisor_id=foreign),
                 lambda: extensions.grant_extension(ctx, case_id=case.id, supervisor_id=foreign),
                 lambda: extensions.shelve(ctx, case_id=case.id, supervisor_id=foreign, reason="x",
                                           review_at=clock.now() + timedelta(days=1)),
                 lambda: takeover.grid_workers(ctx, case_id=case.id, supervisor_id=foreign)):
        with pytest.raises(supervision_access.OutsideYourArea):
            call()
    after = load(db, case.id)
    assert (after.version, after.status, after.handle_due_at) == (before.version, before.status, before.handle_due_at)


def test_reassign_offers_to_the_chosen_grid_worker_and_tells_the_holder(ctx, db) -> None:
    case = accepted_case(ctx, db)
    takeover.reassign(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], worker_id=ctx.ids["other"])
    assert load(db, case.id).status == Status.DISPATCHED
    assert any("reassigned" in n.payload["text"] for n in queued(db.sessions, WORKER, "sendMessage"))
    assert any("Work order" in n.payload.get("text", "") for n in queued(db.sessions, OTHER_WORKER, "sendMessage"))


def test_take_over_makes_the_supervisor_the_holder(ctx, db) -> None:
    case = accepted_case(ctx, db)
    takeover.take_over(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"])
    fresh = load(db, case.id)
    assert fresh.status == Status.IN_PROGRESS and fresh.handler_id == ctx.ids["sup"]
    assert fresh.assignee_id == ctx.ids["sup"]


# -- take over, then complete -------------------------------------------------------------------------
# Decision: the lifecycle already lets a SUPERVISOR complete (IN_PROGRESS/REWORK → AWAITING_VERIFICATION),
# so it is unchanged; services/work.py let only workers complete. It now lets a supervisor complete the
# tasks they hold (which only take_over gives them); the assignee check is the same for everybody.


def held_task_id(db, case_id: int, person_id: int) -> int:
    with db.sessions() as s:
        return s.exec(select(CaseTask.id).where(CaseTask.case_id == case_id, CaseTask.assignee_id == person_id,
                                                CaseTask.status == TaskStatus.ACCEPTED)).one()


def complete_with_proof(ctx, case: Case, person_id: int, task_id: int, clock, *, seed: int) -> None:
    draft = work.start_completion(ctx, task_id=task_id, worker_id=person_id)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=person_id, data=picture(seed))
    lat, lon = offset(case.lat, case.lon, north_m=15)
    work.submit_location(ctx, completion_id=draft.completion_id, worker_id=person_id,
                         fix=work.LocationFix(lat=lat, lon=lon, sent_at=clock.now(), accuracy_m=10, live_period=600))


def test_the_supervisor_who_took_over_completes_with_proof_and_another_verifies(ctx, db, clock) -> None:
    district_boss = add_supervisor(db.sessions, clock.now(), 605, area_code="SH-HP")
    case = accepted_case(ctx, db)
    worker_task = held_task_id(db, case.id, ctx.ids["worker"])
    takeover.take_over(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"])
    task_id = held_task_id(db, case.id, ctx.ids["sup"])
    [note] = [n for n in queued(db.sessions, SUP, "sendMessage") if "You hold case" in n.payload["text"]]
    assert note.payload["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == f"wt:c:{task_id}"
    # The worker it was taken from cannot complete it any more.
    with pytest.raises(work.NotYourOrder):
        work.start_completion(ctx, task_id=worker_task, worker_id=ctx.ids["worker"])
    complete_with_proof(ctx, case, ctx.ids["sup"], task_id, clock, seed=71)
    done = load(db, case.id)
    assert done.status == Status.AWAITING_VERIFICATION and done.handler_id == ctx.ids["sup"]
    with db.sessions() as s:
        event = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "complete")).one()
    assert (event.actor_id, event.actor_role) == (ctx.ids["sup"], "supervisor")
    # They handled it, so they cannot verify it; the card went to the district instead.
    with pytest.raises(verification.OwnWork):
        verification.approve(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], expected_version=done.version)
    assert not any("Approve" in str(n.payload.get("reply_markup")) for n in queued(db.sessions, SUP, "sendMessage"))
    assert any("Approve" in str(n.payload.get("reply_markup")) for n in queued(db.sessions, 605, "sendMessage"))
    verification.approve(ctx, case_id=case.id, supervisor_id=district_boss, expected_version=done.version)
    assert load(db, case.id).status == Status.CLOSED


def test_a_supervisor_completes_only_a_case_they_took_over(ctx, db, clock) -> None:
    case = accepted_case(ctx, db)
    worker_task = held_task_id(db, case.id, ctx.ids["worker"])
    for supervisor in (ctx.ids["sup"], ctx.ids["foreign"]):
        with pytest.raises(work.NotYourOrder):
            work.start_completion(ctx, task_id=worker_task, worker_id=supervisor)
    # A resident (no staff role) is refused before anything is looked up.
    resident = add_person(db.sessions, clock.now(), telegram_user_id=606, roles=["resident"])
    with pytest.raises(work.NotAWorker):
        work.start_completion(ctx, task_id=worker_task, worker_id=resident)
    assert load(db, case.id).status == Status.IN_PROGRESS


# -- forum topics of a supervisor group ------------------------------------------------------------------

GROUP, OTHER_GROUP, THREAD = -1001234567890, -1009876543210, 42


def street_group(db) -> int | None:
    with db.sessions() as s:
        return s.exec(select(Area.supervisor_chat_id).where(Area.code == STREET)).one()


def test_topic_binding_routes_group_pings_to_the_topic_until_unbound(ctx, db, clock) -> None:
    binding = topics.bind_topic(ctx, supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=THREAD)
    # No group anywhere above the street yet: this one becomes the street's supervisor group.
    assert (binding.area_code, binding.claimed_for) == (STREET, "East Nanjing Road")
    assert street_group(db) == GROUP
    # A grid of the street can have its own topic in the same group.
    assert topics.bind_topic(ctx, supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=43,
                             area_code=GRID).claimed_for is None
    case = report(ctx)
    clock.set(load(db, case.id).accept_due_at + timedelta(minutes=16))
    escalation.sweep(ctx)
    # Each binding is confirmed in its topic (queued with the binding), then comes the one ping.
    bound_street, bound_grid, ping = queued(db.sessions, GROUP, "sendMessage")
    assert (bound_street.payload["message_thread_id"], bound_grid.payload["message_thread_id"]) == (THREAD, 43)
    assert "This group is now the supervisors' group of East Nanjing Road." in bound_street.payload["text"]
    assert "Grid 1" in bound_grid.payload["text"] and bound_grid.person_id is None
    # In the city's language (zh_CN), in the grid's topic rather than the street's.
    assert case.number in ping.payload["text"] and ping.payload["message_thread_id"] == 43
    assert topics.unbind_topic(ctx, supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=43) == [
        "East Nanjing Road Grid 1"]
    assert topics.unbind_topic(ctx, supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=43) == []
    with db.sessions() as s:
        assert [(t.area_code, t.message_thread_id) for t in s.exec(select(SupervisorTopic))] == [(STREET, THREAD)]


def test_topic_binding_refusals_write_nothing(ctx, db) -> None:
    sup, foreign = ctx.ids["sup"], ctx.ids["foreign"]
    with pytest.raises(topics.NotInATopic):
        topics.bind_topic(ctx, supervisor_id=sup, chat_id=GROUP, message_thread_id=None)
    with pytest.raises(topics.NotInATopic):
        topics.bind_topic(ctx, supervisor_id=sup, chat_id=SUP, message_thread_id=THREAD)  # a private chat
    with pytest.raises(supervision_access.OutsideYourArea):
        topics.bind_topic(ctx, supervisor_id=foreign, chat_id=GROUP, message_thread_id=THREAD, area_code=GRID)
    with pytest.raises(topics.UnknownArea):
        topics.bind_topic(ctx, supervisor_id=sup, chat_id=GROUP, message_thread_id=THREAD, area_code="SH-XX-99")
    with pytest.raises(supervision_access.NotASupervisor):
        topics.bind_topic(ctx, supervisor_id=ctx.ids["worker"], chat_id=GROUP, message_thread_id=THREAD)
    topics.bind_topic(ctx, supervisor_id=sup, chat_id=GROUP, message_thread_id=THREAD)
    # The street has its group now: another group cannot take its pings.
    with pytest.raises(topics.NotTheSupervisorGroup):
        topics.bind_topic(ctx, supervisor_id=sup, chat_id=OTHER_GROUP, message_thread_id=7, area_code=GRID)
    # A supervisor of another street cannot unbind this street's topic.
    assert topics.unbind_topic(ctx, supervisor_id=foreign, chat_id=GROUP, message_thread_id=THREAD) == []
    with db.sessions() as s:
        assert [(t.chat_id, t.area_code) for t in s.exec(select(SupervisorTopic))] == [(GROUP, STREET)]
    assert street_group(db) == GROUP


# -- staff command menus ---------------------------------------------------------------------------------


def test_staff_menus_are_queued_once_per_staff_member_in_their_language(ctx, db, clock) -> None:
    add_person(db.sessions, clock.now(), telegram_user_id=607, roles=["resident"])
    add_person(db.sessions, clock.now(), telegram_user_id=608, roles=["worker", "supervisor"],
                      area_code=GRID, department_code="greening_appearance")
    assert staff_menus.queue_all(ctx) == 5  # two workers, two supervisors, one with both roles; no resident
    assert staff_menus.queue_all(ctx) == 0  # unchanged menus: a restart queues nothing
    [worker_menu] = queued(db.sessions, WORKER, "setMyCommands")
    assert worker_menu.payload["scope"] == {"type": "chat", "chat_id": WORKER}
    assert [c["command"] for c in worker_menu.payload["commands"]] == ["tasks", "patrol", "duty", "extend", "help"]
    assert worker_menu.payload["commands"][0]["description"] == "your open work orders, overdue first"
    [sup_menu] = queued(db.sessions, SUP, "setMyCommands")
    assert [c["command"] for c in sup_menu.payload["commands"]] == ["verify", "stats", "topic", "workers", "case", "help"]
    [both_menu] = queued(db.sessions, 608, "setMyCommands")
    assert [c["command"] for c in both_menu.payload["commands"]] == [
        "tasks", "patrol", "duty", "extend", "verify", "stats", "topic", "workers", "case", "help"]
    assert queued(db.sessions, 607, "setMyCommands") == []


def test_a_menu_is_queued_again_only_when_its_commands_or_language_change(ctx, db, clock) -> None:
    assert staff_menus.queue_all(ctx) == 4
    with transaction(db.sessions) as s:  # every menu went out
        for row in s.exec(select(Notification).where(Notification.method == "setMyCommands")):
            row.status = NotificationStatus.SENT
    assert staff_menus.queue_all(ctx) == 0  # a restart: nothing changed, nothing queued

    residents.set_language(ctx, telegram_user_id=WORKER, locale="zh_CN", reply_to=ReplyTo(chat_id=WORKER))
    menus = queued(db.sessions, WORKER, "setMyCommands")
    assert len(menus) == 2 and menus[-1].payload["commands"][0]["description"] == "我的待办工单（超时优先）"
    with transaction(db.sessions) as s:  # the worker becomes a supervisor too
        person = s.exec(select(Person).where(Person.telegram_user_id == WORKER)).one()
        person.roles = [*person.roles, "supervisor"]
    assert staff_menus.queue_all(ctx) == 1
    assert [c["command"] for c in queued(db.sessions, WORKER, "setMyCommands")[-1].payload["commands"]] == [
        "tasks", "patrol", "duty", "extend", "verify", "stats", "topic", "workers", "case", "help"]
