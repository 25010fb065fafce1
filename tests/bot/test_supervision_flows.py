"""Supervisor chat flows through the real bot (emulator, fake clock): extensions granted and refused,
the verification queue, scope refusal of replayed buttons, completing a case taken over, forum topics
of a supervisor group, and staff command menus."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import timedelta

from sqlmodel import select

from bot.emulator.users import _chat_instance
from bot.supervision_ui import GrantCb, PingCb, QueueCb
from models.lifecycle import Status
from models.supervision import Extension, ExtensionStatus, SupervisorTopic
from models.tables import Case, Notification
from models.work import CaseTask, TaskStatus, VerificationRequest, WorkOffer
from services import escalation, takeover, work
from bot.renderers.work_text import local_time
from services.invitations import create_invitation
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    GRID,
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

_forged = itertools.count(1)
OTHER_STREET_GRID = "SH-HP-02-001"


def row(db, case_id: int) -> Case:  # noqa: ANN001
    with db.sessions() as s:
        return s.get(Case, case_id)


def texts(user) -> list[str]:  # noqa: ANN001
    return [m.get("text", "") for m in user.inbox]


def accept(ctx, db, case: Case, worker_id: int) -> None:  # noqa: ANN001
    """The worker's Accept, through the same service the button calls."""
    with db.sessions() as s:
        offer_id = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == case.id,
                                                     WorkOffer.worker_id == worker_id)).one()
    work.accept_offer(ctx, offer_id=offer_id, worker_id=worker_id)


def submit_proof(ctx, db, case: Case, worker_id: int, clock, *, seed: int) -> None:  # noqa: ANN001
    """The worker's Complete with a photo and a good location, through the services the chat uses."""
    with db.sessions() as s:
        task_id = s.exec(select(CaseTask.id).where(CaseTask.case_id == case.id, CaseTask.assignee_id == worker_id,
                                                   CaseTask.status == TaskStatus.ACCEPTED)).one()
    draft = work.start_completion(ctx, task_id=task_id, worker_id=worker_id)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker_id, data=picture(seed))
    lat, lon = offset(case.lat, case.lon, north_m=15)
    work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker_id,
                         fix=work.LocationFix(lat=lat, lon=lon, sent_at=clock.now(), accuracy_m=10, live_period=600))


async def replay(emulator, user, message: dict, data: str) -> None:  # noqa: ANN001
    """A callback query the user's client never showed a button for (a replayed or crafted one)."""
    stored = emulator.store.get(user.id, message["message_id"])
    query_id = f"replay-sf{next(_forged)}"
    emulator.callback_queries[query_id] = {"user_id": user.id, "data": data, "chat_id": user.id,
                                           "message_id": stored["message_id"], "answered": False}
    emulator.queue_update("callback_query", {"id": query_id, "from": user.as_user(), "message": copy.deepcopy(stored),
                                             "chat_instance": _chat_instance(user.id), "data": data})


# -- extensions (延期) ---------------------------------------------------------------------------------


async def extension_requested(world, emulator, db, clock, *, worker_tg: int, boss_tg: int,  # noqa: ANN001, ANN201
                              language: str):
    """A case the worker holds; the worker asks for a working day more with /extend; the supervisor's card came."""
    locale = "zh_CN" if language.startswith("zh") else "en"
    worker_id = add_worker(db.sessions, clock.now(), worker_tg, name="Wang Wei", locale=locale)
    add_supervisor(db.sessions, clock.now(), boss_tg, area_code=STREET, name="Boss Li")
    worker = emulator.user(worker_tg, first_name="Wang", language_code=language)
    boss = emulator.user(boss_tg, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    await worker.wait_inbox(1)
    settle(clock)
    await asyncio.to_thread(accept, world.ctx, db, case, worker_id)
    await worker.send_command("extend", f"{case.number} waiting for a spare part")
    await emulator.wait_for(lambda: any("ex:" in str(m.get("reply_markup")) for m in worker.inbox))
    prompt = next(m for m in worker.inbox if "ex:" in str(m.get("reply_markup")))
    await worker.press(prompt, button(prompt, f"ex:{case.id}:480"))
    await answer_to(emulator, worker_tg)
    [card] = await boss.wait_inbox(1)
    return worker, boss, case, card


async def test_a_granted_extension_moves_the_deadline_and_the_worker_is_told_in_chinese(
        world, emulator, db, clock) -> None:
    worker, boss, case, card = await extension_requested(world, emulator, db, clock, worker_tg=9601, boss_tg=9602,
                                                         language="zh-hans")
    old_due = row(db, case.id).handle_due_at
    assert card["text"].startswith(f"⏳ Wang Wei asks for more time on case {case.number}: 8.0 working hours.")
    assert card["text"].endswith("Reason: waiting for a spare part")
    assert button_texts(card) == ["+4 working hours", "+1 working day", "+3 working days", "✖️ Refuse the request"]
    assert row(db, case.id).status == Status.EXTENSION_REQUESTED

    await boss.press(card, button(card, GrantCb(case_id=case.id, minutes=480).pack()))
    [answer] = await answer_to(emulator, boss.id)
    stored = row(db, case.id)
    new_due = local_time(stored.handle_due_at, world.ctx.timezone)
    assert answer["text"] == f"Extension granted: new deadline {new_due}."
    assert stored.status == Status.IN_PROGRESS and stored.handle_due_at > old_due
    with db.sessions() as s:
        extension = s.exec(select(Extension)).one()
    assert (extension.status, extension.old_due_at, extension.new_due_at) == (
        ExtensionStatus.GRANTED, old_due, stored.handle_due_at)
    await emulator.wait_for(lambda: any("延期已批准" in t for t in texts(worker)))
    assert texts(worker)[-1] == f"⏳ 案件{case.number}：延期已批准，请于{new_due}前处置。"


async def test_a_refused_extension_asks_the_reason_and_keeps_the_deadline(world, emulator, db, clock) -> None:
    worker, boss, case, card = await extension_requested(world, emulator, db, clock, worker_tg=9611, boss_tg=9612,
                                                         language="en")
    due = row(db, case.id).handle_due_at
    await boss.press(card, button(card, PingCb(action="x", case_id=case.id).pack()))
    await answer_to(emulator, boss.id)
    await emulator.wait_for(lambda: len(boss.inbox) == 2)
    assert boss.inbox[-1]["text"] == "Why is the extension refused? Send the reason in one message."
    await boss.send_text("The part is in the depot; fetch it today")
    await emulator.wait_for(lambda: any("refused; the worker was told" in t for t in texts(boss)))
    await emulator.wait_for(lambda: "extension refused" in texts(worker)[-1])
    assert texts(worker)[-1] == (f"✖️ Case {case.number}: extension refused (The part is in the depot; fetch it "
                                 f"today). The deadline stays {local_time(due, world.ctx.timezone)}.")
    stored = row(db, case.id)
    assert (stored.status, stored.handle_due_at) == (Status.IN_PROGRESS, due)
    with db.sessions() as s:
        extension = s.exec(select(Extension)).one()
    assert (extension.status, extension.decision_note) == (ExtensionStatus.REFUSED,
                                                           "The part is in the depot; fetch it today")


# -- the verification queue and scope -------------------------------------------------------------------


async def test_verify_lists_the_areas_cases_oldest_first_and_opens_the_proof_card(world, emulator, db, clock) -> None:
    # Workers whose chats nobody watches; the supervisors join after the proofs, so no card comes unasked.
    here = add_worker(db.sessions, clock.now(), 9621)
    there = add_worker(db.sessions, clock.now(), 9622, area_code=OTHER_STREET_GRID)
    first = await asyncio.to_thread(report, world.ctx)
    second = await asyncio.to_thread(report, world.ctx, description="Broken bench")
    foreign = await asyncio.to_thread(report, world.ctx, grid=OTHER_STREET_GRID)
    for case, worker in ((first, here), (second, here), (foreign, there)):
        await asyncio.to_thread(accept, world.ctx, db, case, worker)
    # The second case reached verification first, so it has waited longest.
    for seed, (case, worker) in enumerate(((second, here), (first, here), (foreign, there)), start=30):
        clock.advance(minutes=5)
        await asyncio.to_thread(submit_proof, world.ctx, db, case, worker, clock, seed=seed)
    add_supervisor(db.sessions, clock.now(), 9623, area_code=STREET, name="Boss Li")
    boss = emulator.user(9623, first_name="Li", language_code="en")

    await boss.send_command("verify")
    [queue] = await boss.wait_inbox(1)
    assert queue["text"] == "🔎 Awaiting verification in your area, oldest first (2):"
    labels = button_texts(queue)
    assert [label.split(" · ")[0] for label in labels] == [second.number, first.number]
    assert labels[0].endswith(local_time(row(db, second.id).updated_at, world.ctx.timezone))

    await boss.press(queue, button(queue, QueueCb(case_id=second.id).pack()))
    await answer_to(emulator, boss.id)
    [_, card] = await boss.wait_inbox(2)
    assert card["text"].startswith("🔍") and second.number in card["text"]
    assert button_texts(card) == ["✅ Approve and close", "🔁 Reject: rework"]
    assert button(card, "sv:a:") == f"sv:a:{second.id}:{row(db, second.id).version}"
    settle(clock)
    await emulator.wait_for(lambda: any("photo" in m for m in boss.inbox))  # then the proof photo


async def test_replayed_buttons_of_another_streets_case_are_refused_and_change_nothing(
        world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9631, area_code=OTHER_STREET_GRID)
    add_supervisor(db.sessions, clock.now(), 9632, area_code=STREET, name="Boss Li")
    boss = emulator.user(9632, first_name="Li", language_code="en")
    foreign = await asyncio.to_thread(report, world.ctx, grid=OTHER_STREET_GRID)
    await boss.send_command("verify")
    [message] = await boss.wait_inbox(1)
    before = row(db, foreign.id)
    # Callback data built as the UI builds it, for a case of street SH-HP-02.
    crafted = [QueueCb(case_id=foreign.id).pack(), GrantCb(case_id=foreign.id, minutes=1440).pack(),
               PingCb(action="t", case_id=foreign.id).pack(), PingCb(action="s", case_id=foreign.id).pack()]
    for data in crafted:
        await replay(emulator, boss, message, data)
    answers = await answer_to(emulator, boss.id, len(crafted))
    assert [(a["text"], a["show_alert"]) for a in answers] == [("This case is outside your area.", True)] * 4
    after = row(db, foreign.id)
    assert (after.version, after.status, after.handle_due_at, after.handler_id, after.escalation_round) == (
        before.version, before.status, before.handle_due_at, before.handler_id, before.escalation_round)
    with db.sessions() as s:
        assert s.exec(select(Extension)).all() == [] and s.exec(select(VerificationRequest)).all() == []
        # Nothing was queued for the supervisor but the answer to /verify.
        assert len(s.exec(select(Notification).where(Notification.chat_id == 9632)).all()) == 1
    assert len(boss.inbox) == 1


# -- take over, then complete in chat ---------------------------------------------------------------------


async def test_the_supervisor_who_took_over_completes_the_case_in_chat(world, emulator, db, clock) -> None:
    worker_id = add_worker(db.sessions, clock.now(), 9641)
    boss_id = add_supervisor(db.sessions, clock.now(), 9642, area_code=STREET, name="Boss Li")
    boss = emulator.user(9642, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    await asyncio.to_thread(accept, world.ctx, db, case, worker_id)
    await asyncio.to_thread(takeover.take_over, world.ctx, case_id=case.id, supervisor_id=boss_id)
    [held] = await boss.wait_inbox(1)
    assert held["text"].startswith(f"🙋 You hold case {case.number} now.")
    assert button_texts(held) == [f"📸 Complete {case.number}"]

    await boss.press(held, button(held, "wt:c:"))
    await emulator.wait_for(lambda: texts(boss)[-1] == f"Case {case.number}: send 1 to 3 photos of the finished work.")
    await boss.send_photo(picture(91))
    await emulator.wait_for(lambda: texts(boss)[-1].startswith("Photo 1 of 3 received."))  # asks for the location
    await boss.send_location(*offset(case.lat, case.lon, north_m=20), horizontal_accuracy=8, live_period=600)
    await emulator.wait_for(lambda: texts(boss)[-1].startswith(f"✅ Proof submitted for case {case.number}"))
    stored = row(db, case.id)
    assert (stored.status, stored.handler_id) == (Status.AWAITING_VERIFICATION, boss_id)


# -- forum topics of the supervisor group ------------------------------------------------------------------


async def test_topic_binds_the_area_and_pings_go_to_that_topic(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9651)
    add_supervisor(db.sessions, clock.now(), 9652, area_code=STREET, name="Boss Li")
    boss = emulator.user(9652, first_name="Li", language_code="en")
    group = emulator.group(-1009650000001, "Huangpu supervisors", is_forum=True)
    await group.send_command(boss, "topic", message_thread_id=77)
    [bound] = await emulator.wait_for(lambda: group.inbox or None)
    assert bound["text"] == ("📌 Escalation pings about East Nanjing Road now come to this topic.\n"
                             "This group is now the supervisors' group of East Nanjing Road.")
    assert bound["message_thread_id"] == 77 and bound["is_topic_message"] is True

    case = await asyncio.to_thread(report, world.ctx)
    clock.set(row(db, case.id).accept_due_at + timedelta(minutes=16))
    await asyncio.to_thread(escalation.sweep, world.ctx)
    await emulator.wait_for(lambda: len(group.inbox) == 2, timeout=15)
    ping = group.inbox[1]
    assert case.number in ping["text"] and ping["message_thread_id"] == 77
    assert button(ping, "ep:a:").startswith(f"ep:a:{case.id}:")
    calls = [c for c in emulator.calls("sendMessage") if c.ok and int(c.params["chat_id"]) == group.id]
    assert [int(c.params.get("message_thread_id", 0)) for c in calls] == [77, 77]

    await group.send_command(boss, "topic", "off", message_thread_id=77)
    await emulator.wait_for(lambda: len(group.inbox) == 3, timeout=15)
    assert group.inbox[2]["text"] == "Escalation pings about East Nanjing Road no longer come to this topic."
    with db.sessions() as s:
        assert s.exec(select(SupervisorTopic)).all() == []


# -- staff command menus ------------------------------------------------------------------------------------


async def test_a_new_worker_gets_the_worker_command_menu_in_their_chat(world, emulator, db) -> None:
    issued = await asyncio.to_thread(create_invitation, world.ctx, role="worker", area_code=GRID,
                                     department_code="greening_appearance")
    zhou = emulator.user(9661, first_name="Zhou", language_code="en")
    await zhou.send_command("/start", issued.token)
    await zhou.wait_inbox(1)

    def menus() -> list:
        return [c for c in emulator.calls("setMyCommands") if c.ok
                and (c.params.get("scope") or {}).get("chat_id") == zhou.id]

    [menu] = await emulator.wait_for(menus)
    assert menu.params["scope"]["type"] == "chat" and "language_code" not in menu.params
    assert [(c["command"], c["description"]) for c in menu.params["commands"]] == [
        ("tasks", "your open work orders, overdue first"), ("patrol", "report a problem you found on patrol"),
        ("duty", "go on or off duty"),
        ("extend", "ask for more time on a case"), ("help", "what I can do")]
    assert zhou.inbox[0]["text"].startswith("Welcome, Zhou!")  # the welcome went first


async def test_help_lists_a_supervisors_commands_as_in_their_menu(world, emulator, db, clock) -> None:
    add_person(db.sessions, clock.now(), telegram_user_id=9671, roles=["supervisor", "worker"], area_code=STREET,
               department_code="greening_appearance", name="Boss Wu")
    boss = emulator.user(9671, first_name="Wu", language_code="en")
    await boss.send_command("help")
    [reply] = await boss.wait_inbox(1)
    lines = reply["text"].splitlines()
    # Both roles: the worker's and the supervisor's commands, each once, then the common ones; no resident ones.
    assert lines[:10] == ["What you can do:", "/tasks — your open work orders, overdue first",
                          "/patrol — report a problem you found on patrol", "/duty — go on or off duty",
                          "/extend — ask for more time on a case", "/verify — cases awaiting your verification",
                          "/stats — how your area is doing", "/topic — send an area's pings to this forum topic",
                          "/workers — the workers of your area",
                          "/case — a case's card, to cancel it or merge a duplicate"]
    assert "/report" not in reply["text"] and "/help — this list" in lines
