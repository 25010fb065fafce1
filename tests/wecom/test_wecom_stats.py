"""统计 on WeCom / 政务微信: a supervisor reads their area's KPIs from the app's menu, as Telegram's /stats
gives them (tests/bot/test_supervision_pings.py); a worker is refused. Compared with the zh_CN catalogue."""

from __future__ import annotations

import asyncio

from tests.wecom.support import ZH, act, add_wecom_person, until
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


async def test_a_worker_on_wecom_who_presses_statistics_is_told_it_is_for_supervisors(world, wecom_emu, db,
                                                                                      clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    clock.advance(seconds=1)
    answer = await act(worker, lambda: worker.click_menu("stats"))
    assert answer.text == ZH("Only an active supervisor of this area can do that.")
