"""Cancel (注销), merge and a resident's withdrawal through the real bot (emulator, fake clock), both databases:
what the supervisor, the worker and the residents see, and the rows left behind. The stuck-case invariant is
checked after every test (tests/work_invariants.py)."""

from __future__ import annotations

import asyncio
import copy
import itertools

import sqlalchemy as sa
from sqlmodel import select

from bot.emulator.users import _chat_instance
from bot.resident_ui import MyCasesCb
from bot.supervision_ui import CaseEndCb
from models.lifecycle import Status
from models.resident import CaseFollower, FollowKind
from models.tables import Case, CaseEvent, Person, Photo
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services import work
from tests.work_invariants import check_work_invariants  # noqa: F401
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    add_person,
    add_supervisor,
    add_worker,
    answer_to,
    button,
    button_texts,
    emulator,
    picture,
    report,
    settle,
    world,
)

_forged = itertools.count(1)


def row(db, case_id: int) -> Case:  # noqa: ANN001
    with db.sessions() as s:
        return s.get(Case, case_id)


def seen(user) -> list[str]:  # noqa: ANN001
    return [m.get("text") or m.get("caption") or "" for m in user.inbox]


def resident(db, clock, telegram_user_id: int, locale: str) -> int:  # noqa: ANN001
    person_id = add_person(db.sessions, clock.now(), telegram_user_id=telegram_user_id, roles=["resident"],
                           locale=locale, name=f"Resident {telegram_user_id}")
    with db.sessions() as s, s.begin():
        s.execute(sa.update(Person).where(Person.id == person_id).values(consented_at=clock.now()))
    return person_id


def reported_by(ctx, db, clock, person_id: int, *, seed: int, **kw):  # noqa: ANN001, ANN003, ANN201
    """A case reported by the resident with a photo, who follows it as its reporter (as the report flow does)."""
    case = report(ctx, reporter_id=person_id, photo=picture(seed), photo_unique_id=f"res-{seed}", **kw)
    with db.sessions() as s, s.begin():
        s.add(CaseFollower(case_id=case.id, person_id=person_id, kind=FollowKind.REPORTER, created_at=clock.now()))
    return case


WAIT = 30.0  # seconds of wall time a step may take on a loaded machine (the clock is the test's own)


async def until(emulator, clock, condition) -> None:  # noqa: ANN001
    """Wait for `condition`, moving the clock a little now and then: Telegram takes one message a second per
    chat, so a second message to one person waits for the test's clock."""
    for _ in range(int(WAIT)):
        try:
            await emulator.wait_for(condition, timeout=1.0)
            return
        except TimeoutError:
            settle(clock, 1.1)
    await emulator.wait_for(condition, timeout=1.0)


async def case_card(emulator, clock, boss, number: str) -> dict:  # noqa: ANN001
    count = len(boss.inbox)
    await boss.send_command("case", number)
    return await next_message(emulator, clock, boss, count)


async def next_message(emulator, clock, user, count: int) -> dict:  # noqa: ANN001
    await until(emulator, clock, lambda: len(user.inbox) > count)
    return user.inbox[-1]


# -- cancel ------------------------------------------------------------------------------------------


async def test_a_supervisor_cancels_a_case_from_its_card_with_a_quick_reason(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9801, name="Wang Wei")
    add_supervisor(db.sessions, clock.now(), 9802, name="Boss Li")
    reporter = resident(db, clock, 9803, "zh_CN")
    worker = emulator.user(9801, first_name="Wang", language_code="en")
    boss = emulator.user(9802, first_name="Li", language_code="en")
    citizen = emulator.user(9803, first_name="李", language_code="zh-hans")
    case = await asyncio.to_thread(reported_by, world.ctx, db, clock, reporter, seed=1)
    await until(emulator, clock, lambda: len(worker.inbox) >= 1)
    settle(clock)

    card = await case_card(emulator, clock, boss, case.number.lower())
    assert card["text"].startswith(f"📁 Case {case.number} · ")
    assert button_texts(card) == ["🚫 Cancel case", "🔗 Merge duplicate"]
    count = len(boss.inbox)
    await boss.press(card, button(card, CaseEndCb(action="c", case_id=case.id).pack()))
    reasons = await next_message(emulator, clock, boss, count)
    assert reasons["text"] == f"Why is case {case.number} cancelled? Its reporter and followers are told the reason."
    assert button_texts(reasons) == ["Nothing found on site", "Not a problem of public space",
                                     "Outside our jurisdiction", "False or joke report", "✏️ Another reason…"]
    await boss.press(reasons, button(reasons, CaseEndCb(action="r", case_id=case.id, arg=2).pack()))
    answers = await answer_to(emulator, boss.id, 2, timeout=WAIT)
    assert answers[-1]["text"] == f"Case {case.number} is cancelled."

    await until(emulator, clock, lambda: f"🚫 Case {case.number} is cancelled. Reason: Outside our jurisdiction"
                            in seen(boss))
    await until(emulator, clock, lambda: any("no longer open" in t for t in seen(worker)))
    assert seen(worker)[0] == f"Work order {case.number} is no longer open; no action needed."  # edited in place
    assert "reply_markup" not in worker.inbox[0] or not button_texts(worker.inbox[0])
    await until(emulator, clock, lambda: any("注销" in t for t in seen(citizen)))
    assert seen(citizen)[-1].startswith(f"🚫 案件 {case.number}（")  # the reason as the supervisor chose it
    assert seen(citizen)[-1].endswith("已作为无效上报注销。原因：Outside our jurisdiction")
    stored = row(db, case.id)
    assert stored.status == Status.CANCELLED
    with db.sessions() as s:
        assert {t.status for t in s.exec(select(CaseTask).where(CaseTask.case_id == case.id))} == {"cancelled"}
        assert {o.status for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id))} == {"withdrawn"}
        note = s.exec(select(CaseEvent.note).where(CaseEvent.case_id == case.id, CaseEvent.action == "cancel")).one()
    assert note == "Outside our jurisdiction"


async def test_a_cancel_with_a_typed_reason_in_chinese_and_an_in_progress_case_is_refused(
        world, emulator, db, clock) -> None:
    worker_id = add_worker(db.sessions, clock.now(), 9811, name="Wang Wei")
    add_supervisor(db.sessions, clock.now(), 9812, name="张主管", locale="zh_CN")
    boss = emulator.user(9812, first_name="张", language_code="zh-hans")
    worker = emulator.user(9811, first_name="Wang", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    held = await asyncio.to_thread(report, world.ctx, description="another pile")
    await until(emulator, clock, lambda: len(worker.inbox) >= 2)
    settle(clock)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == held.id)).one()
    await asyncio.to_thread(work.accept_offer, world.ctx, offer_id=offer, worker_id=worker_id)

    card = await case_card(emulator, clock, boss, case.number)
    assert button_texts(card) == ["🚫 注销案件", "🔗 合并重复案件"]
    count = len(boss.inbox)
    await boss.press(card, button(card, CaseEndCb(action="c", case_id=case.id).pack()))
    reasons = await next_message(emulator, clock, boss, count)
    count = len(boss.inbox)
    await boss.press(reasons, button(reasons, CaseEndCb(action="o", case_id=case.id).pack()))
    prompt = await next_message(emulator, clock, boss, count)
    assert prompt["text"] == f"请用一条消息发送注销案件 {case.number} 的原因。"
    await boss.send_text("居民已自行清理")
    await until(emulator, clock, lambda: f"🚫 案件 {case.number} 已注销。原因：居民已自行清理" in seen(boss))
    assert row(db, case.id).status == Status.CANCELLED

    # A case a worker is handling cannot be cancelled from its card: the supervisor is told, nothing changes.
    card = await case_card(emulator, clock, boss, held.number)
    await boss.press(card, button(card, CaseEndCb(action="c", case_id=held.id).pack()))
    answers = await answer_to(emulator, boss.id, 3, timeout=WAIT)
    assert answers[-1]["text"] == f"案件{held.number}当前不能这样处理。"
    assert row(db, held.id).status == Status.IN_PROGRESS


# -- merge -------------------------------------------------------------------------------------------


async def test_a_supervisor_merges_a_duplicate_and_its_reporter_follows_the_surviving_case(
        world, emulator, db, clock) -> None:
    worker_id = add_worker(db.sessions, clock.now(), 9821, name="Wang Wei")
    add_supervisor(db.sessions, clock.now(), 9822, name="Boss Li")
    first_reporter = resident(db, clock, 9823, "en")
    second_reporter = resident(db, clock, 9824, "zh_CN")
    worker = emulator.user(9821, first_name="Wang", language_code="en")
    boss = emulator.user(9822, first_name="Li", language_code="en")
    second = emulator.user(9824, first_name="周", language_code="zh-hans")
    survivor = await asyncio.to_thread(reported_by, world.ctx, db, clock, first_reporter, seed=11)
    await until(emulator, clock, lambda: len(worker.inbox) >= 1)
    settle(clock)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == survivor.id)).one()
    await asyncio.to_thread(work.accept_offer, world.ctx, offer_id=offer, worker_id=worker_id)
    duplicate = await asyncio.to_thread(reported_by, world.ctx, db, clock, second_reporter, seed=12)
    await until(emulator, clock, lambda: any(duplicate.number in t for t in seen(worker)))
    settle(clock)

    card = await case_card(emulator, clock, boss, duplicate.number)
    count = len(boss.inbox)
    await boss.press(card, button(card, CaseEndCb(action="m", case_id=duplicate.id).pack()))
    choice = await next_message(emulator, clock, boss, count)
    assert choice["text"].startswith(f"Merge case {duplicate.number} into which open case?")
    assert button_texts(choice) == [f"{survivor.number} · Exposed garbage", "⌨️ Type the case number…"]
    await boss.press(choice, button(choice, CaseEndCb(action="i", case_id=duplicate.id, arg=survivor.id).pack()))
    answers = await answer_to(emulator, boss.id, 2, timeout=WAIT)
    assert answers[-1]["text"] == f"Case {duplicate.number} is merged into {survivor.number}."

    await until(emulator, clock, lambda: any(survivor.number in t for t in seen(second)))
    assert seen(second)[-1] == (f"🔗 案件 {duplicate.number} 已合并到案件 {survivor.number}（同一问题的另一条上报）。"
                                f"您现在关注案件 {survivor.number}，会收到它的进展通知；/my 可查看。")
    await until(emulator, clock, lambda: f"Work order {duplicate.number} is no longer open; no action needed." in seen(worker))
    await until(emulator, clock, lambda: any("1 follower(s)" in t for t in seen(boss)))
    with db.sessions() as s:
        dup, kept = s.get(Case, duplicate.id), s.get(Case, survivor.id)
        follows = set(s.exec(select(CaseFollower.person_id).where(CaseFollower.case_id == survivor.id)).all())
        photo_id = s.exec(select(Photo.id).where(Photo.case_id == duplicate.id)).one()
        trail = s.exec(select(CaseEvent.note).where(CaseEvent.case_id == survivor.id,
                                                    CaseEvent.action == "merge")).one()
    assert (dup.status, dup.merged_into_id, kept.status) == (Status.MERGED, survivor.id, Status.IN_PROGRESS)
    assert follows == {first_reporter, second_reporter} and kept.report_count == 2
    assert trail == f"duplicate {duplicate.number} merged into this case; its photos: {photo_id}"

    # The surviving case's progress now reaches the duplicate's reporter, in their language.
    count = len(second.inbox)
    await asyncio.to_thread(_complete, world.ctx, db, clock, survivor, worker_id)
    await until(emulator, clock, lambda: len(second.inbox) > count and survivor.number in seen(second)[-1])


def _complete(ctx, db, clock, case: Case, worker_id: int) -> None:  # noqa: ANN001
    from tests.case_states import complete
    complete(ctx, db, clock, case.id, worker_id, seed=77)


async def test_merge_by_typed_number_refuses_itself_and_a_closed_case(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9831, name="Wang Wei")
    add_supervisor(db.sessions, clock.now(), 9832, name="Boss Li")
    boss = emulator.user(9832, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    for typed, refusal in [(case.number, "A case cannot be merged into itself."),
                           ("SH-19990101-000001", "There is no open case with that number in your area.")]:
        card = await case_card(emulator, clock, boss, case.number)
        count = len(boss.inbox)
        await boss.press(card, button(card, CaseEndCb(action="m", case_id=case.id).pack()))
        choice = await next_message(emulator, clock, boss, count)
        count = len(boss.inbox)
        await boss.press(choice, button(choice, CaseEndCb(action="n", case_id=case.id).pack()))
        prompt = await next_message(emulator, clock, boss, count)
        assert prompt["text"].startswith(f"Send the number of the open case that {case.number} duplicates")
        count = len(boss.inbox)
        await boss.send_text(typed)
        assert (await next_message(emulator, clock, boss, count))["text"] == refusal
    assert row(db, case.id).status == Status.DISPATCHED


# -- a resident withdraws ----------------------------------------------------------------------------------


async def test_a_resident_withdraws_an_unstarted_report_from_my_and_not_one_under_way(
        world, emulator, db, clock) -> None:
    worker_id = add_worker(db.sessions, clock.now(), 9841, name="Wang Wei")
    person = resident(db, clock, 9843, "en")
    worker = emulator.user(9841, first_name="Wang", language_code="en")
    citizen = emulator.user(9843, first_name="Ed", language_code="en")
    mine = await asyncio.to_thread(reported_by, world.ctx, db, clock, person, seed=21)
    started = await asyncio.to_thread(reported_by, world.ctx, db, clock, person, seed=22)
    await until(emulator, clock, lambda: len(worker.inbox) >= 2)
    settle(clock)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == started.id)).one()
    await asyncio.to_thread(work.accept_offer, world.ctx, offer_id=offer, worker_id=worker_id)

    await until(emulator, clock, lambda: any("now handling" in t for t in seen(citizen)))
    listing = await my_list(emulator, clock, citizen)
    assert listing["text"].startswith("📋 Your cases (2)")
    await citizen.press(listing, MyCasesCb(act="open", case=mine.id).pack())
    await until(emulator, clock, lambda: "Withdraw" in str(citizen.inbox[-1].get("reply_markup")))
    card = citizen.inbox[-1]
    assert button_texts(card) == ["↩️ Withdraw my report", "⬅ Back to my cases"]
    await citizen.press(card, button(card, MyCasesCb(act="wd", case=mine.id).pack()))
    await until(emulator, clock, lambda: citizen.inbox[-1]["text"].startswith("Withdraw your report?"))
    confirm = citizen.inbox[-1]
    assert button_texts(confirm) == ["Yes, withdraw it", "No, keep it"]
    await citizen.press(confirm, button(confirm, MyCasesCb(act="wdy", case=mine.id).pack()))
    settle(clock, 2)
    await until(emulator, clock, lambda: f"↩️ Your report {mine.number} is withdrawn and the case is closed. Thank you "
                            "for letting us know." in seen(citizen))
    await until(emulator, clock, lambda: f"Work order {mine.number} is no longer open; no action needed." in seen(worker))
    assert row(db, mine.id).status == Status.CANCELLED

    # The case a worker accepted: its card has no withdraw button, and a replayed one is refused politely.
    listing = await my_list(emulator, clock, citizen)
    await citizen.press(listing, MyCasesCb(act="open", case=started.id).pack())
    await until(emulator, clock, lambda: citizen.inbox[-1].get("text", "").startswith(f"Case {started.number}"))
    assert button_texts(citizen.inbox[-1]) == ["⬅ Back to my cases"]
    await _replay(emulator, citizen, citizen.inbox[-1], MyCasesCb(act="wdy", case=started.id).pack())
    await until(emulator, clock, lambda: any(f"Work on case {started.number} has already started" in (a.get("text") or "")
                                        for a in emulator.callback_answers if a["user_id"] == citizen.id))
    assert row(db, started.id).status == Status.IN_PROGRESS
    with db.sessions() as s:
        assert s.exec(select(CaseTask.status).where(CaseTask.case_id == started.id)).one() == TaskStatus.ACCEPTED
        assert OfferStatus.WITHDRAWN in s.exec(select(WorkOffer.status).where(WorkOffer.case_id == mine.id)).all()


async def my_list(emulator, clock, citizen) -> dict:  # noqa: ANN001
    """Send /my and return the list it answers with."""
    count = len(citizen.inbox)
    await citizen.send_command("my")
    await until(emulator, clock, lambda: any(m.get("text", "").startswith("📋 Your cases")
                                             for m in citizen.inbox[count:]))
    return next(m for m in citizen.inbox[count:] if m.get("text", "").startswith("📋 Your cases"))


async def _replay(emulator, user, message: dict, data: str) -> None:  # noqa: ANN001
    """A callback query the user's client never showed a button for (a replayed or crafted one)."""
    stored = emulator.store.get(user.id, message["message_id"])
    query_id = f"replay-ce{next(_forged)}"
    emulator.callback_queries[query_id] = {"user_id": user.id, "data": data, "chat_id": user.id,
                                           "message_id": stored["message_id"], "answered": False}
    emulator.queue_update("callback_query", {"id": query_id, "from": user.as_user(), "message": copy.deepcopy(stored),
                                             "chat_instance": _chat_instance(user.id), "data": data})
