"""巡查上报 through the real bot: a grid worker on duty files a problem they found, keeps it or hands it to
dispatch, and closes it with the usual proof; no consent screen, no 回访; the supervisor's /stats counts it."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import select

from models.lifecycle import Status
from models.patrol import PatrolReport
from models.resident import CaseFollower
from models.tables import Case, CaseSource, Photo
from models.work import WorkOffer
from tests.bot.resident_kit import (
    GRID_1,
    INSIDE,
    Resident,
    buttons,
    jpeg_with_gps,
    press_data_contains,
    resident_app,  # noqa: F401 - fixture
    settings_overrides,  # noqa: F401 - fixture
)
from tests.worker_support import (  # noqa: F401 - emulator: message dates follow the test's clock
    add_supervisor,
    add_worker,
    button,
    emulator,
    offset,
    picture,
    settle,
)

STREET = "SH-CN-01"


async def patrol_card(worker: Resident, *, command: str, caption: str, kind: str = "environment",
                      category: str = "exposed_garbage") -> tuple[dict[str, Any], str]:
    """Drive the command → kind → category → photo (+caption) → location; returns the summary card and the
    first screen's text as it arrived (that message becomes the photo prompt afterwards)."""
    mark = worker.last_id()
    await worker.user.send_command(command)
    menu = await worker.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    first = menu["text"]
    await press_data_contains(worker, menu, f":kind:{kind}")
    await worker.emulator.wait_for(lambda: any(f":cat:{category}" in b["callback_data"] for b in buttons(
        next(m for m in worker.messages() if m["message_id"] == menu["message_id"]))), timeout=15)
    await press_data_contains(worker, menu, f":cat:{category}")
    await worker.expect(lambda m: "📷" in (m.get("text") or ""), after=menu["message_id"] - 1)
    mark = worker.last_id()
    await worker.user.send_photo(jpeg_with_gps(), caption=caption)
    await worker.expect(lambda m: (m.get("text") or "").startswith("📷"), after=mark)
    mark = worker.last_id()
    await worker.user.send_location(*INSIDE)
    card = await worker.expect(lambda m: any(":keep" in b["callback_data"] for b in buttons(m)), after=mark)
    return card, first


def case_by_number(db, number: str) -> Case:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(Case).where(Case.number == number)).one()


def no_consent_screen(worker: Resident) -> bool:
    return not any(b["callback_data"].startswith("cs:") for m in worker.messages() for b in buttons(m))


async def test_a_worker_files_a_patrol_report_keeps_it_and_closes_it(resident_app, emulator, db, clock) -> None:
    now = clock.now()
    finder = add_worker(db.sessions, now, 9401, area_code=GRID_1, name="Wang Wei")
    add_worker(db.sessions, now, 9402, area_code=GRID_1, name="Chen Jie")  # same grid and department
    add_supervisor(db.sessions, now, 9403, area_code=STREET, name="Boss Li")
    wang = Resident(emulator.user(9401, "Wang", language_code="en"), emulator)
    boss = emulator.user(9403, "Li", language_code="en")

    card, first = await patrol_card(wang, command="/patrol", caption="Overflowing bins by the school gate")
    assert first == "🚶 Patrol report (巡查上报). What did you find? Choose a kind:"
    assert card["text"].startswith("📋 Please check your report:")
    assert "Description: Overflowing bins by the school gate" in card["text"]
    assert [b["text"] for b in buttons(card)] == ["✅ Submit: I will handle it", "📤 Hand to dispatch", "✏️ Edit",
                                                  "✖ Cancel"]
    mark = wang.last_id()
    await press_data_contains(wang, card, ":keep")
    filed = await wang.expect("registered from your patrol", after=mark)
    number = filed["text"].split("Case ")[1].split(" ")[0]
    assert filed["text"] == (f"✅ Case {number} registered from your patrol. It is yours: the work order follows; "
                             "press Complete when the problem is solved.")
    await wang.wait_buttons_gone(card)
    settle(clock)
    order = await wang.expect(f"📋 Your patrol report is case {number}, assigned to you.", after=mark)
    assert "Source: patrol" in order["text"] and "Overflowing bins by the school gate" in order["text"]
    assert no_consent_screen(wang)

    case = case_by_number(db, number)
    assert (case.source, case.status, case.reporter_id, case.handler_id, case.grid_code) == (
        CaseSource.PATROL, Status.IN_PROGRESS, finder, finder, GRID_1)
    with db.sessions() as s:
        assert [(o.worker_id, o.status) for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id))] == [
            (finder, "accepted")]
        assert s.exec(select(CaseFollower).where(CaseFollower.case_id == case.id)).all() == []  # no 回访 loop
        assert s.get(PatrolReport, case.id).handed_to_dispatch is False
        assert len(s.exec(select(Photo).where(Photo.case_id == case.id, Photo.purpose == "report")).all()) == 1
    assert emulator.sent(9402) == []  # nobody else is offered it

    # Closing: the usual proof, then the supervisor's approval.
    mark = wang.last_id()
    await wang.user.press(order, button(order, "wt:c:"))
    await wang.expect(f"Case {number}: send 1 to 3 photos of the finished work.", after=mark)
    mark = wang.last_id()
    await wang.user.send_photo(picture(4401))
    await wang.expect("share your location on site to submit", after=mark)  # the location keyboard comes with it
    mark = wang.last_id()
    await wang.user.send_location(*offset(*INSIDE, north_m=15), horizontal_accuracy=10, live_period=600)
    await wang.expect(f"✅ Proof submitted for case {number}", after=mark)
    await boss.wait_inbox(1)
    settle(clock)
    verify = await emulator.wait_for(lambda: next((m for m in boss.inbox if any(
        b["callback_data"].startswith("sv:a:") for b in buttons(m))), None), timeout=15)
    await boss.press(verify, button(verify, "sv:a:"))
    await emulator.wait_for(lambda: case_by_number(db, number).status == Status.CLOSED, timeout=15)
    settle(clock)
    await wang.expect(f"✅ Case {number} was verified and closed. Thank you!")
    assert not any(b["callback_data"].startswith("fb:") for m in wang.messages() for b in buttons(m))

    # 主动发现 in the supervisor's /stats: the area's only case was found on patrol, by Wang.
    settle(clock)
    mark = boss.inbox[-1]["message_id"]
    await boss.send_command("stats")
    stats = await emulator.wait_for(lambda: next((m for m in boss.inbox if m["message_id"] > mark
                                                  and m.get("text", "").startswith("📊")), None), timeout=15)
    lines = stats["text"].splitlines()
    assert "Found on patrol (主动发现): 100.0% (1/1)" in lines
    assert lines[lines.index("Patrol share by grid (found on patrol ÷ registered):") + 1] == f"· {GRID_1}: 100.0% (1/1)"
    assert lines[lines.index("Patrol share by worker (found on patrol ÷ their cases):") + 1:] == [
        "· Wang Wei: 100.0% (1/1)"]


async def test_a_worker_hands_a_patrol_report_to_dispatch_in_chinese(resident_app, emulator, db, clock) -> None:
    now = clock.now()
    finder = add_worker(db.sessions, now, 9411, area_code=GRID_1, name="李明", locale="zh_CN")
    colleague = add_worker(db.sessions, now, 9412, area_code=GRID_1, name="Chen Jie")  # same grid and department
    li = Resident(emulator.user(9411, "李明", language_code="zh-hans"), emulator)
    chen = emulator.user(9412, "Chen", language_code="en")

    card, first = await patrol_card(li, command="/report", caption="垃圾桶满溢")  # a worker's /report is a patrol report
    assert card["text"].startswith("📋 请核对您的上报：")
    assert [b["text"] for b in buttons(card)] == ["✅ 提交：由我处置", "📤 提交派遣（转其他部门）", "✏️ 修改", "✖ 取消"]
    assert first == "🚶 巡查上报。您发现了什么问题？请选择类型："
    mark = li.last_id()
    await press_data_contains(li, card, ":hand")
    filed = await li.expect("已提交派遣", after=mark)
    number = filed["text"].split("案件编号 ")[1].split("，")[0]
    assert filed["text"] == (f"📤 您的巡查上报已立案，案件编号 {number}，已提交派遣，将派给相应部门的网格员处置。谢谢！")

    [offer] = await chen.wait_inbox(1, timeout=15)  # the pool gets it, as any case
    assert f"Work order {number}" in (offer.get("text") or offer.get("caption") or "")
    case = case_by_number(db, number)
    assert (case.source, case.status, case.reporter_id, case.handler_id) == (
        CaseSource.PATROL, Status.DISPATCHED, finder, None)
    with db.sessions() as s:
        assert [o.worker_id for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case.id))] == [colleague]
        assert s.get(PatrolReport, case.id).handed_to_dispatch is True
    await asyncio.sleep(0.2)  # give a wrong offer to the finder the chance to arrive
    assert not any(b["callback_data"].startswith("wo:") for m in li.messages() for b in buttons(m))
    assert no_consent_screen(li)


async def test_an_off_duty_worker_is_told_to_go_on_duty_first(resident_app, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9421, area_code=GRID_1, on_duty=False)
    zhou = Resident(emulator.user(9421, "Zhou", language_code="en"), emulator)
    await zhou.user.send_command("/patrol")
    told = await zhou.expect("off duty")
    assert told["text"] == "You are off duty. Patrol reports are filed on duty: send /duty, then /patrol."
    assert buttons(told) == [] and no_consent_screen(zhou)
    with db.sessions() as s:
        assert s.exec(select(Case)).all() == []
