"""Following a case to the end: stage messages, /my with its pages and cards, and 回访 after closure."""

from __future__ import annotations

import asyncio
import itertools

from sqlmodel import select

from models.lifecycle import Action, Actor, Role, Status
from models.resident import CaseFeedback, CaseFollower, FollowKind
from models.tables import Case, CaseEvent
from services import cases
from tests.bot.resident_kit import (
    INSIDE,
    Resident,
    buttons,
    make_person,
    offset,
    press_data_contains,
    resident_app,  # noqa: F401 - fixture
    seed_case,
    settings_overrides,  # noqa: F401 - fixture
)

_query_ids = itertools.count(1)


def _follow(db, case_id: int, person_id: int) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    with db.sessions() as s, s.begin():
        s.add(CaseFollower(case_id=case_id, person_id=person_id, kind=FollowKind.FOLLOWER,
                           created_at=datetime(2026, 11, 21, 2, tzinfo=UTC)))


def _walk_to_closed(app, case_id: int, *, worker: int, supervisor: int) -> None:  # noqa: ANN001
    for action, actor in [(Action.DISPATCH, Actor(Role.SYSTEM)), (Action.ACCEPT, Actor(Role.WORKER, worker)),
                          (Action.COMPLETE, Actor(Role.WORKER, worker)),
                          (Action.APPROVE, Actor(Role.SUPERVISOR, supervisor))]:
        app.ctx.clock.advance(minutes=10)
        cases.apply_action(app.ctx, case_id=case_id, action=action, actor=actor)


async def test_reporter_and_follower_hear_every_stage_and_not_fixed_reopens(resident_app, emulator, db,
                                                                           clock) -> None:
    reporter = make_person(db, 6001, locale="en")
    follower = make_person(db, 6002, locale="zh_CN")
    worker = make_person(db, None, roles=("worker",), name="王师傅")
    supervisor = make_person(db, None, roles=("supervisor",), name="张主管")
    case = seed_case(resident_app, person_id=reporter, description="Overflowing bins")
    _follow(db, case.id, follower)
    await asyncio.to_thread(_walk_to_closed, resident_app, case.id, worker=worker, supervisor=supervisor)

    eng = Resident(emulator.user(6001, "Ed", language_code="en"), emulator)
    zh = Resident(emulator.user(6002, "周", language_code="zh-hans"), emulator)
    question = await eng.expect("really fixed?")
    n = case.number
    assert eng.texts()[:4] == [
        f"📨 Case {n} (Exposed garbage) has been passed to the grid's workers.",
        f"🔧 A grid worker is now handling case {n} (Exposed garbage).",
        f"🔍 The work on case {n} (Exposed garbage) is done and is being checked by a supervisor.",
        f"✅ Case {n} (Exposed garbage) is closed.",
    ]
    assert question["text"] == f"Is the problem of case {n} (Exposed garbage) really fixed?"
    zh_question = await zh.expect("真的解决了吗")
    assert zh.texts()[0] == f"📨 案件 {n}（暴露垃圾）已派遣给网格员。"
    assert not any("王" in t or "张" in t for t in eng.texts() + zh.texts())  # staff stay anonymous too

    mark = eng.last_id()
    await press_data_contains(eng, question, ":n")
    await emulator.wait_for(lambda: "What is still wrong?" in _now(eng, question)["text"])
    await eng.user.send_text("Still <b>two</b> bags by the gate")
    reopened = await eng.expect("is reopened for rework", after=mark)
    assert reopened["text"] == f"↩️ Case {n} is reopened for rework with your note. I will keep you posted."
    rating = await eng.expect("How satisfied are you", after=reopened["message_id"])
    notice = await zh.expect("有居民反馈问题未解决", after=zh_question["message_id"])
    assert notice["text"] == f"↩️ 案件 {n}（暴露垃圾）已退回返工：有居民反馈问题未解决。"
    with db.sessions() as s:
        stored = s.get(Case, case.id)
        assert stored.status == Status.REWORK and stored.closed_at is None
        last = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id.desc())).first()
        assert (last.action, last.actor_role, last.actor_id) == (Action.REOPEN, Role.RESIDENT, reporter)
        assert last.note == "Still <b>two</b> bags by the gate"
        fb = s.exec(select(CaseFeedback).where(CaseFeedback.person_id == reporter)).one()
        assert (fb.fixed, fb.reopened) == (False, True)

    await press_data_contains(eng, rating, ":r:2")
    await emulator.wait_for(lambda: "You rated case" in _now(eng, rating)["text"])
    mark = eng.last_id()
    await eng.user.send_text("Slow, but they came")
    await eng.expect("Your comment on case", after=mark)
    with db.sessions() as s:
        fb = s.exec(select(CaseFeedback).where(CaseFeedback.person_id == reporter)).one()
        assert (fb.rating, fb.comment) == (2, "Slow, but they came")

    # The follower's question is about a closure that no longer stands: answered, but nothing reopens twice.
    await press_data_contains(zh, zh_question, ":n")
    await emulator.wait_for(lambda: "已被退回返工" in _now(zh, zh_question)["text"])
    with db.sessions() as s:
        assert s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                              CaseEvent.action == Action.REOPEN)).all().__len__() == 1


async def test_fixed_is_thanked_and_too_late_cannot_reopen(resident_app, emulator, db, clock) -> None:
    happy, late_one = make_person(db, 6003, locale="en"), make_person(db, 6007, locale="en")
    worker = make_person(db, None, roles=("worker",))
    supervisor = make_person(db, None, roles=("supervisor",))
    early = seed_case(resident_app, person_id=happy)
    late = seed_case(resident_app, person_id=late_one, where=offset(INSIDE, east_m=40), category="fallen_tree")
    await asyncio.to_thread(_walk_to_closed, resident_app, early.id, worker=worker, supervisor=supervisor)
    await asyncio.to_thread(_walk_to_closed, resident_app, late.id, worker=worker, supervisor=supervisor)
    ivy = Resident(emulator.user(6003, "Ivy", language_code="en"), emulator)
    ola = Resident(emulator.user(6007, "Ola", language_code="en"), emulator)
    q_early = await ivy.expect(f"case {early.number} (Exposed garbage) really fixed?")
    q_late = await ola.expect(f"case {late.number} (Fallen tree) really fixed?")

    await press_data_contains(ivy, q_early, ":y")
    await emulator.wait_for(lambda: "Glad it is fixed!" in _now(ivy, q_early)["text"])
    await press_data_contains(ivy, _now(ivy, q_early), ":r:5")
    await emulator.wait_for(lambda: "⭐⭐⭐⭐⭐" in _now(ivy, q_early)["text"])
    await press_data_contains(ivy, _now(ivy, q_early), ":skip")
    await emulator.wait_for(lambda: not buttons(_now(ivy, q_early)))

    clock.advance(days=8)  # past the 7-day window
    await press_data_contains(ola, q_late, ":n")
    await emulator.wait_for(lambda: "more than 7 days ago" in _now(ola, q_late)["text"])
    await press_data_contains(ola, _now(ola, q_late), ":r:1")  # the rating is still welcome
    await emulator.wait_for(lambda: "You rated case" in _now(ola, q_late)["text"])
    with db.sessions() as s:
        assert s.get(Case, late.id).status == Status.CLOSED
        answers = {f.case_id: (f.fixed, f.rating, f.reopened) for f in s.exec(select(CaseFeedback))}
    assert answers == {early.id: (True, 5, False), late.id: (False, 1, False)}


async def test_my_cases_pages_and_cards(resident_app, emulator, db, clock) -> None:
    me = make_person(db, 6004, locale="en")
    other = make_person(db, 6005, locale="en")
    mine = []
    for i in range(7):
        mine.append(seed_case(resident_app, person_id=me, where=offset(INSIDE, east_m=15 * i),
                              description=f"bins #{i} <i>again</i>"))
        clock.advance(minutes=15)
    foreign = seed_case(resident_app, person_id=other, where=offset(INSIDE, north_m=30))
    zoe = Resident(emulator.user(6004, "Zoe", language_code="en"), emulator)

    await zoe.user.send_command("/my")
    listing = await zoe.expect("📋 Your cases (7), newest first — page 1 of 2:")
    lines = listing["text"].splitlines()[1:]
    assert [line.split(" · ")[0] for line in lines] == [c.number for c in reversed(mine[2:])]
    assert lines[0].endswith("· Exposed garbage · registered · 11-21 11:30")
    await press_data_contains(zoe, listing, "my:pg:1")
    await emulator.wait_for(lambda: "page 2 of 2" in _now(zoe, listing)["text"])
    page2 = _now(zoe, listing)
    assert [line.split(" · ")[0] for line in page2["text"].splitlines()[1:]] == [mine[1].number, mine[0].number]

    await press_data_contains(zoe, page2, f"my:open:1:{mine[0].id}")
    await emulator.wait_for(lambda: _now(zoe, listing)["text"].startswith(f"Case {mine[0].number}"))
    card = _now(zoe, listing)["text"]
    assert "Description: bins #0 <i>again</i>" in card  # escaped: shown as typed
    assert "Place: Jiangsu Road Grid 1, Jiangsu Road, " in card
    assert card.endswith("Timeline:\n11-21 10:00 registered")

    forged = _forge_press(emulator, zoe, _now(zoe, listing), f"my:open:0:{foreign.id}")
    answer = await emulator.wait_for(lambda: next((a for a in emulator.callback_answers
                                                   if a["callback_query_id"] == forged), None))
    assert answer["text"] == "This case is not among yours." and answer["show_alert"]
    assert f"Case {mine[0].number}" in _now(zoe, listing)["text"]  # nothing about the other case shown


async def test_my_cases_when_there_are_none(resident_app, emulator, db) -> None:
    make_person(db, 6006, locale="zh_CN")
    new = Resident(emulator.user(6006, "新", language_code="zh-hans"), emulator)
    await new.user.send_text("📋 我的案件")
    reply = await new.expect("您还没有案件")
    assert reply["text"] == "您还没有案件。点击“📝 上报问题”即可上报。"


def _now(resident: Resident, message: dict) -> dict:
    return next(m for m in resident.messages() if m["message_id"] == message["message_id"])


def _forge_press(emulator, resident: Resident, message: dict, data: str) -> str:  # noqa: ANN001
    """A callback query with data no button carries (a replayed or crafted one)."""
    query_id = f"forged{next(_query_ids)}"
    emulator.callback_queries[query_id] = {"user_id": resident.id, "data": data, "chat_id": resident.id,
                                           "message_id": message["message_id"], "answered": False}
    emulator.queue_update("callback_query", {"id": query_id, "from": resident.user.as_user(), "message": message,
                                             "chat_instance": "1", "data": data})
    return query_id
