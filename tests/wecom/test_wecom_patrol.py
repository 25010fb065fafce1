"""巡查上报 on WeCom / 政务微信: a grid worker on WeCom reports what they found on their round, from the app's
menu, with a photo and their location, and keeps the case or hands it to dispatch (tests/bot/test_patrol_report.py
is the same on Telegram). Every message is compared with the zh_CN catalogue."""

from __future__ import annotations

import re

from sqlmodel import select

from models.lifecycle import Status
from models.patrol import PatrolReport
from models.tables import Case, CaseSource, Photo
from tests.wecom.support import ZH, act, add_wecom_person, until
from tests.worker_support import GRID, add_worker, picture, point_in
from wecom.emulator import WecomMember


def number_of(listing: str, name: str) -> str:
    """The number the list gives the category called `name`."""
    return re.search(rf"^(\d+)\. {re.escape(name)}$", listing, re.MULTILINE).group(1)


async def start(worker: WecomMember, clock) -> str:  # noqa: ANN001
    """Open a patrol report from the menu; the category list, then the prompt with Cancel."""
    clock.advance(seconds=1)  # the same menu click in the same second would be WeCom's own retry
    before = len(worker.inbox)
    await worker.click_menu("patrol")
    await until(lambda: len(worker.inbox) >= before + 2)
    listing, prompt = worker.inbox[before], worker.inbox[before + 1]
    assert listing.text.startswith(ZH("🚶 Patrol report (巡查上报). What did you find? Reply with its number:"))
    assert prompt.text == ZH("Reply with a number, or press Cancel.") and list(prompt.buttons) == [ZH("Cancel")]
    return listing.text


async def test_a_worker_on_wecom_files_a_patrol_report_and_keeps_the_case(world, wecom_emu, db, clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    listing = await start(worker, clock)

    wrong = await act(worker, lambda: worker.send_text("99"))
    assert wrong.text == ZH("That is not a number on the list. Reply with the number of the kind of problem.")
    asked = await act(worker, lambda: worker.send_text(number_of(listing, "暴露垃圾")))
    assert asked.text == ZH("📷 {category}: send one to three photos of the problem, then your location on site "
                            "(＋ → Location).").format(category="暴露垃圾")
    lat, lon = point_in(GRID)
    needs = await act(worker, lambda: worker.send_location(lat, lon))  # this kind needs a photo first
    assert needs.text == ZH("This kind of problem needs a photo first. Please send one, then the location.")
    got = await act(worker, lambda: worker.send_image(picture(701)))
    assert got.text.startswith(ZH("Photo {count} of {max} received.").format(count=1, max=3))
    words = await act(worker, lambda: worker.send_location(lat, lon))
    assert words.text == ZH("Now write a few words about the problem in one message (or send - to leave it out).")
    card = await act(worker, lambda: worker.send_text("垃圾箱满溢"))
    assert card.body["template_card"]["main_title"]["title"] == ZH("🚶 Patrol report: {category}").format(
        category="暴露垃圾")
    assert ZH("Photos: {count}").format(count=1) in card.text and "垃圾箱满溢" in card.text
    assert list(card.buttons) == [ZH("✅ Submit: I will handle it"), ZH("📤 To dispatch"), ZH("Cancel")]

    filed = await act(worker, lambda: worker.press(card, ZH("✅ Submit: I will handle it")))
    with db.sessions() as s:
        case = s.exec(select(Case)).one()
        photos = s.exec(select(Photo).where(Photo.case_id == case.id)).all()
    assert filed.text == ZH("✅ Case <b>{number}</b> registered from your patrol. It is yours: the work order "
                            "follows; press Complete when the problem is solved.").replace(
        "<b>", "").replace("</b>", "").format(number=case.number)
    order = await until(lambda: next((m for m in worker.inbox if m.task_id and ZH("📸 Complete") in m.buttons), None))
    assert case.number in order.text
    assert (case.source, case.category_code, case.description, len(photos)) == (
        CaseSource.PATROL, "exposed_garbage", "垃圾箱满溢", 1)
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS  # the finder's own accepted order
    clock.advance(seconds=1)  # a press at the same second would be WeCom's own retry of the first
    again = await act(worker, lambda: worker.press(card, ZH("✅ Submit: I will handle it")))
    assert again.text == ZH("Please finish the report first.")  # a second press files nothing
    with db.sessions() as s:
        assert len(s.exec(select(Case)).all()) == 1


async def test_off_duty_outside_the_map_cancel_and_hand_to_dispatch_on_wecom(world, emulator, wecom_emu, db,
                                                                          clock) -> None:
    finder = add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                              department_code="greening_appearance", name="王伟", on_duty=False)
    add_worker(db.sessions, clock.now(), 9601, department_code="ecology_environment")  # the department's worker
    other = emulator.user(9601, first_name="Eco", language_code="en")
    worker = WecomMember(wecom_emu, "wangwei")
    off = await act(worker, lambda: worker.click_menu("patrol"))
    assert off.text == ZH("You are off duty. Patrol reports are filed on duty: go on duty from the app's menu first.")
    await act(worker, lambda: worker.click_menu("duty"))  # on duty

    listing = await start(worker, clock)
    await act(worker, lambda: worker.send_text(number_of(listing, "废气异味扰民")))  # no photo needed
    outside = await act(worker, lambda: worker.send_location(10.0, 10.0))
    assert outside.text.startswith(ZH("📍 This place ({lat:.5f}, {lon:.5f}) is outside the area OneGrid covers, "
                                      "so I cannot take the report there. Please share the location of the problem "
                                      "itself, from where it is.").format(lat=10.0, lon=10.0))
    prompt = next(m for m in reversed(worker.inbox) if ZH("Cancel") in m.buttons)  # "Reply with a number..."
    cancelled = await act(worker, lambda: worker.press(prompt, ZH("Cancel")))
    assert cancelled.text == ZH("Report cancelled. Nothing was stored.")

    listing = await start(worker, clock)
    await act(worker, lambda: worker.send_text(number_of(listing, "废气异味扰民")))
    await act(worker, lambda: worker.send_location(*point_in(GRID)))
    card = await act(worker, lambda: worker.send_text("-"))
    assert ZH("Photos: {count}").format(count=0) in card.text
    filed = await act(worker, lambda: worker.press(card, ZH("📤 To dispatch")))
    with db.sessions() as s:
        case = s.exec(select(Case)).one()
        report = s.exec(select(PatrolReport)).one()
    assert filed.text.startswith(ZH("📤 Case <b>{number}</b> registered from your patrol and handed to dispatch: the "
                                    "workers of its department will get it. Thank you!").replace(
        "<b>", "").replace("</b>", "").format(number=case.number))
    assert (report.finder_id, report.handed_to_dispatch, case.description) == (finder, True, "")  # "-": no words
    [offer] = await other.wait_inbox(1)  # offered to the department's worker, never to its finder
    assert case.number in (offer.get("text") or offer.get("caption"))


async def test_an_unfinished_patrol_report_expires_and_nothing_is_stored(world, wecom_emu, db, clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    listing = await start(worker, clock)
    await act(worker, lambda: worker.send_text(number_of(listing, "暴露垃圾")))
    minutes = world.ctx.settings.report_draft_timeout_minutes
    clock.advance(minutes=minutes + 1)
    expired = await act(worker, lambda: worker.send_location(*point_in(GRID)))
    assert expired.text == ZH("Your unfinished patrol report expired after {minutes} minutes without activity; "
                              "nothing was stored. Start again from the app's menu.").format(minutes=minutes)
    after = await act(worker, lambda: worker.send_text("还在吗"))  # the draft is gone: the usual hint
    assert after.text == ZH("Use the app's menu: go on or off duty, list your work orders, or file a patrol report.")
    with db.sessions() as s:
        assert s.exec(select(Case)).all() == []


async def test_photos_wecom_cannot_give_back_at_filing_keep_the_draft_for_another_press(world, wecom_emu, db,
                                                                                       clock) -> None:
    add_wecom_person(db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                     department_code="greening_appearance", name="王伟")
    worker = WecomMember(wecom_emu, "wangwei")
    listing = await start(worker, clock)
    await act(worker, lambda: worker.send_text(number_of(listing, "暴露垃圾")))
    await act(worker, lambda: worker.send_image(picture(702)))
    await act(worker, lambda: worker.send_location(*point_in(GRID)))
    card = await act(worker, lambda: worker.send_text("-"))
    [(media_id, photo)] = wecom_emu.media.items()  # the worker's one photo: the app sent no image
    del wecom_emu.media[media_id]  # WeCom answers 40007 for it now
    refused = await act(worker, lambda: worker.press(card, ZH("📤 To dispatch")))
    assert refused.text == ZH("The photos could not be fetched from WeCom just now; nothing was stored. Press the "
                              "button again in a moment.")
    with db.sessions() as s:
        assert s.exec(select(Case)).all() == []
    wecom_emu.media[media_id] = photo
    clock.advance(seconds=1)
    filed = await act(worker, lambda: worker.press(card, ZH("📤 To dispatch")))  # the draft was kept
    with db.sessions() as s:
        case = s.exec(select(Case)).one()
    assert case.number in filed.text
