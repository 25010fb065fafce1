"""A supervisor's menus on WeCom / 政务微信: 统计, the area's KPIs as Telegram's /stats gives them, and 待核查,
the verification queue of Telegram's /verify (tests/bot/test_supervision_pings.py); a worker is refused.
Every message is compared with the zh_CN catalogue."""

from __future__ import annotations

import asyncio

from models.lifecycle import Status
from tests.wecom.support import ZH, act, add_wecom_person, case_status, next_message, until
from tests.wecom.test_wecom_work import accept_and_prove
from tests.worker_support import GRID, STREET, report
from wecom.emulator import WecomMember


async def test_a_supervisor_on_wecom_reads_the_areas_figures_for_each_period(world, wecom_emu, db, clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "lijun", roles=["supervisor"], area_code=STREET, name="李军")
    boss = WecomMember(wecom_emu, "lijun")
    case = await asyncio.to_thread(report, world.ctx, grid=GRID)
    [alert] = await until(lambda: boss.inbox)  # nobody of the department is on duty there: the supervisor hears
    assert alert.text.startswith(ZH("⚠️ No worker available for case {number}").format(number=case.number))

    clock.advance(seconds=1)
    week = await act(boss, lambda: boss.click_menu("stats"))
    lines = week.text.split("\n")
    assert week.msgtype == "text"
    assert lines[0] == ZH("📊 {area}, {period}").format(area=STREET, period=ZH("the last 7 days"))
    assert ZH("Registered: {n}").format(n=1) in lines and ZH("Closed: {n}").format(n=0) in lines
    assert any(line.startswith(ZH("Time to close: mean {mean}, p90 {p90}").split("{")[0]) for line in lines)
    assert "&" not in week.text and "<" not in week.text  # plain text: nothing HTML-escaped

    for key, period in (("stats:today", "today"), ("stats:30d", "the last 30 days"), ("stats:1y", "the last 7 days")):
        clock.advance(seconds=1)  # the same click in the same second would be WeCom's own retry
        answer = await act(boss, lambda key=key: boss.click_menu(key))
        assert answer.text.split("\n")[0] == ZH("📊 {area}, {period}").format(area=STREET, period=ZH(period)), key
        assert ZH("Registered: {n}").format(n=1) in answer.text.split("\n")


async def test_a_supervisor_on_wecom_opens_a_case_from_the_verification_queue_and_closes_it(world, wecom_emu, db,
                                                                                          clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                     department_code="greening_appearance", name="王伟")
    add_wecom_person(db.sessions, clock.now(), "lijun", roles=["supervisor"], area_code=STREET, name="李军")
    worker, boss = WecomMember(wecom_emu, "wangwei"), WecomMember(wecom_emu, "lijun")
    clock.advance(seconds=1)
    empty = await act(boss, lambda: boss.click_menu("verify"))
    assert empty.text == ZH("Nothing awaits verification in your area.")

    case = await asyncio.to_thread(report, world.ctx)
    await accept_and_prove(world, wecom_emu, clock, worker, case, seed=631)
    pushed = await until(lambda: [m for m in boss.inbox if m.msgtype == "template_card"
                                  and ZH("🔍 Please verify case {number}").format(number=case.number) in m.text])
    assert len(pushed) == 1  # the card sent when the proof came in; the queue brings it back when it is lost

    clock.advance(seconds=1)
    queue = await act(boss, lambda: boss.click_menu("verify"))
    card = queue.body["template_card"]
    assert card["main_title"]["title"] == ZH("🔎 Awaiting verification in your area, oldest first ({count}):").format(
        count=1)
    assert card["sub_title_text"].startswith(f"{case.number} · ")
    assert list(queue.buttons) == [case.number]

    clock.advance(seconds=1)
    before_open = len(boss.inbox)
    await boss.press(queue, case.number)
    opened = await next_message(boss, before_open)
    assert opened.body["template_card"]["main_title"]["title"] == ZH("🔍 Please verify case {number}").format(
        number=case.number)
    assert list(opened.buttons) == [ZH("✅ Approve and close"), ZH("🔁 Reject: rework")]
    photo = await next_message(boss, before_open + 1)
    assert photo.msgtype == "image"  # the proof photo follows its card, as when the card was pushed

    before = len(worker.inbox)
    clock.advance(seconds=1)
    await boss.press(opened, ZH("✅ Approve and close"))
    closed = await next_message(worker, before)
    assert closed.text == ZH("✅ Case {number} was verified and closed. Thank you!").format(number=case.number)
    assert case_status(db, case.id) == Status.CLOSED

    clock.advance(seconds=1)  # the queue's button again, after the case was closed: refused, nothing changes
    stale = await act(boss, lambda: boss.press(queue, case.number))
    assert stale.text == ZH("Case {number} cannot be changed that way now.").format(number=case.number)
    clock.advance(seconds=1)
    again = await act(boss, lambda: boss.click_menu("verify"))
    assert again.text == ZH("Nothing awaits verification in your area.")
    assert case_status(db, case.id) == Status.CLOSED


async def test_a_worker_on_wecom_who_presses_a_supervisor_menu_is_told_it_is_for_supervisors(world, wecom_emu, db,
                                                                                           clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    for key in ("stats", "stats:30d", "verify"):
        clock.advance(seconds=1)  # the same click in the same second would be WeCom's own retry
        answer = await act(worker, lambda key=key: worker.click_menu(key))
        assert answer.text == ZH("Only an active supervisor of this area can do that."), key


async def test_a_message_outside_any_prompt_points_each_member_to_the_menus_of_their_roles(world, wecom_emu, db,
                                                                                          clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "lijun", roles=["supervisor"], area_code=STREET, name="李军")
    add_wecom_person(db.sessions, clock.now(), "zhaomin", roles=["worker", "supervisor"], area_code=GRID,
                     department_code="greening_appearance", name="赵敏")
    worker_hint = ZH("Use the app's menu: go on or off duty, list your work orders, or file a patrol report.")
    supervisor_hint = ZH("Supervisors: the 待核查 menu lists the cases awaiting your verification, and the 统计 menu "
                         "shows your area's figures.")
    boss, both = WecomMember(wecom_emu, "lijun"), WecomMember(wecom_emu, "zhaomin")
    assert (await act(boss, lambda: boss.send_text("你好"))).text == supervisor_hint
    assert (await act(both, lambda: both.send_text("你好"))).text == worker_hint + "\n" + supervisor_hint
