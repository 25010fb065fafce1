"""A resident reports a problem in chat, through the real Dispatcher, the queue and the sender."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from PIL import Image
from sqlmodel import select

from models.lifecycle import Status
from models.resident import CaseFollower, ReportReceipt
from models.tables import Case, CaseEvent, CaseSource, Photo
from tests.bot import taps
from tests.bot.resident_kit import (
    ELSEWHERE,
    INSIDE,
    OUTSIDE,
    Resident,
    buttons,
    consent,
    encode,
    jpeg_with_gps,
    make_person,
    offset,
    person_of,
    picture,
    quick_report,
    seed_case,
    resident_app,  # noqa: F401 - fixture
    settings_overrides,  # noqa: F401 - fixture
    standard_report,
    submit,
)


async def test_happy_path_in_english_takes_at_most_six_interactions(resident_app, emulator, db) -> None:
    neighbour = make_person(db, 5101, locale="zh_CN")
    for _ in range(2):  # the most reported problem around, in the next grid: no duplicate of Bob's
        seed_case(resident_app, person_id=neighbour, where=ELSEWHERE)
    bob = Resident(emulator.user(5001, "Bob", language_code="en"), emulator)
    await consent(bob)
    assert person_of(db, 5001).consented_at is not None

    start, since = len(bob.messages()), taps.mark(emulator)
    card, first_screen = await quick_report(bob, category="exposed_garbage",
                                            description="Overflowing <b>bins</b> & bags")
    assert first_screen[0] == "🔥 Exposed garbage"  # one tap: no kind step
    text = card["text"]
    assert text.startswith("📋 Please check your report:")
    assert "Category: Exposed garbage" in text
    assert "Place: Jiangsu Road Grid 1, Jiangsu Road, " in text
    assert f"Coordinates: {INSIDE[0]:.5f}, {INSIDE[1]:.5f}" in text
    assert "Photos: 1" in text
    assert "Description: Overflowing <b>bins</b> & bags" in text  # shown literally: escaped, not bold
    assert not any(e["type"] == "bold" for e in card.get("entities", []))

    done = await submit(bob, card)
    sent = taps.interactions(emulator, 5001, since)
    assert len(sent) <= 6, sent
    assert [s.split(":")[0] if s.startswith("press") else s for s in sent] == [
        "command /report", "press rp", "photo", "location", "text", "press rp"]
    assert ":cat:exposed_garbage:" in sent[1] and sent[5].endswith(":submit::0")
    number = done["text"].split("case ")[1].split(".")[0]
    assert done["text"].startswith(f"✅ Registered as case {number}.")
    assert f"It should be handled by {_due(db, number)}." in done["text"]  # the category's SLA, Shanghai time
    assert bob.reply_keyboard_texts()[0] == "📝 Report a problem"  # the main menu is back
    await bob.wait_buttons_gone(card)
    bot_messages = len(bob.messages()) - start
    assert bot_messages == 5  # menu (edited into the photo prompt), photo ack, description prompt, card, registered

    bob_id = person_of(db, 5001).id
    with db.sessions() as s:
        case = s.exec(select(Case).where(Case.number == number)).one()
        assert (case.status, case.source, case.category_code) == (Status.REGISTERED, CaseSource.RESIDENT,
                                                                    "exposed_garbage")
        assert case.description == "Overflowing <b>bins</b> & bags"
        assert case.grid_code == "SH-CN-01-001"
        assert case.reporter_id == bob_id
        [photo] = s.exec(select(Photo).where(Photo.case_id == case.id)).all()
        assert photo.original_path is None  # retention 0: the original is not kept
        follow = s.exec(select(CaseFollower).where(CaseFollower.case_id == case.id)).one()
        assert follow.person_id == case.reporter_id
        assert s.exec(select(ReportReceipt).where(ReportReceipt.case_id == case.id)).one()
        events = s.exec(select(CaseEvent.action).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)).all()
        assert events == ["report", "register"]
    clean = Image.open(Path(resident_app.settings.data_dir) / photo.path)
    assert clean.format == "JPEG" and not clean.getexif()  # the GPS the phone wrote is gone


async def test_happy_path_in_chinese_takes_at_most_six_interactions(resident_app, emulator, db) -> None:
    neighbour = make_person(db, 5101, locale="zh_CN")
    seed_case(resident_app, person_id=neighbour, category="fire_lane_blocked", where=ELSEWHERE)
    li = Resident(emulator.user(5002, "李雷", language_code="zh-hans"), emulator)
    await consent(li)
    since = taps.mark(emulator)
    card, first_screen = await quick_report(li, category="fire_lane_blocked", description="消防通道被堵")
    assert first_screen[0] == "🔥 占用消防通道"
    assert card["text"].startswith("📋 请核对您的上报：")
    assert "类别：占用消防通道" in card["text"]
    assert "江苏路街道第1网格" in card["text"]
    done = await submit(li, card)
    sent = taps.interactions(emulator, 5002, since)
    assert len(sent) <= 6, sent
    assert [s.split(":")[0] if s.startswith("press") else s for s in sent] == [
        "command /report", "press rp", "photo", "location", "text", "press rp"]
    assert done["text"].startswith("✅ 已立案，案件编号")
    number = done["text"].split("编号 ")[1].split("。")[0]
    assert f"预计处置完成时间：{_due(db, number)}。" in done["text"]
    assert li.reply_keyboard_texts()[0] == "📝 上报问题"
    li_id = person_of(db, 5002).id
    with db.sessions() as s:
        case = s.exec(select(Case).where(Case.number == number)).one()
        assert case.category_code == "fire_lane_blocked" and case.description == "消防通道被堵"
        assert case.reporter_id == li_id and case.grid_code == "SH-CN-01-001"
        assert len(s.exec(select(Photo).where(Photo.case_id == case.id)).all()) == 1


async def test_a_caption_and_the_kind_menu_also_take_six(resident_app, emulator, db) -> None:
    """A category not among the shortcuts costs the kind step; a caption on the photo saves the description."""
    ann = Resident(emulator.user(5015, "Ann", language_code="en"), emulator)
    make_person(db, 5015)  # agreed earlier; consent has its own tests
    since = taps.mark(emulator)
    card, _taps = await standard_report(ann, kind="roads", category="road_surface_damaged", caption="Deep pothole")
    done = await submit(ann, card)
    sent = taps.interactions(emulator, 5015, since)
    assert len(sent) <= 6, sent
    assert [s.split(":")[0] if s.startswith("press") else s for s in sent] == [
        "command /report", "press rp", "press rp", "photo", "location", "press rp"]
    number = done["text"].split("case ")[1].split(".")[0]
    with db.sessions() as s:
        case = s.exec(select(Case).where(Case.number == number)).one()
    assert (case.category_code, case.description) == ("road_surface_damaged", "Deep pothole")


def _due(db, number: str) -> str:  # noqa: ANN001
    """The case's handling deadline as the resident should read it (Shanghai time)."""
    from services.resident_views import local_time

    with db.sessions() as s:
        case = s.exec(select(Case).where(Case.number == number)).one()
    assert case.handle_due_at > case.created_at
    return local_time(case.handle_due_at, "Asia/Shanghai")


def _cases(db) -> list[Case]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(Case)).all())


async def test_image_sent_as_a_file_and_a_typed_description(resident_app, emulator, db) -> None:
    ann = Resident(emulator.user(5003, "Ann", language_code="en"), emulator)
    make_person(db, 5003)  # agreed earlier; consent has its own tests
    png = encode(picture(3), "PNG")
    card_or_prompt = None
    mark = ann.last_id()
    # No caption: after the location the bot asks for the description.
    await ann.user.send_command("/report")
    menu = await ann.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await _press(ann, menu, ":kind:roads")
    await emulator.wait_for(lambda: "choose the category" in _now(ann, menu)["text"])
    await _press(ann, menu, ":cat:road_surface_damaged")
    await ann.expect("📷 Send one to three photos", after=menu["message_id"] - 1)
    mark = ann.last_id()
    await ann.user.send_document(png, "pothole.png", "image/png")
    await ann.expect("📷 Photo 1 of 3 received", after=mark)
    mark = ann.last_id()
    await ann.user.send_location(*INSIDE, horizontal_accuracy=12)
    prompt = await ann.expect("✏️ Describe the problem", after=mark)
    assert prompt["text"].startswith("📍 Location received: Jiangsu Road Grid 1, Jiangsu Road,")
    mark = ann.last_id()
    await ann.user.send_text("x" * 1001)
    refusal = await ann.expect("characters long", after=mark)
    assert refusal["text"] == "Your text is 1001 characters long; please keep it within 1000 characters."
    mark = ann.last_id()
    await ann.user.send_text("  Deep pothole,\n\n  bikes   fall in  ")
    card_or_prompt = await ann.expect("📋 Please check your report:", after=mark)
    assert "Description: Deep pothole,\nbikes fall in" in card_or_prompt["text"]
    done = await submit(ann, card_or_prompt)
    assert "Registered as case" in done["text"]
    [case] = _cases(db)
    assert case.description == "Deep pothole,\nbikes fall in"
    with db.sessions() as s:
        [photo] = s.exec(select(Photo).where(Photo.case_id == case.id)).all()
    clean = Image.open(Path(resident_app.settings.data_dir) / photo.path)
    assert clean.format == "JPEG" and (photo.width, photo.height) == (640, 480)


async def test_an_album_with_a_heic_file_gives_three_clean_photos_and_no_fourth(resident_app, emulator, db) -> None:
    kai = Resident(emulator.user(5004, "Kai", language_code="en"), emulator)
    make_person(db, 5004)  # agreed earlier; consent has its own tests
    await _to_photo_step(kai, emulator)
    mark = kai.last_id()
    # Three pictures at once, as an album arrives: one update each, handled strictly one after the other.
    await kai.user.send_document(encode(picture(4), "HEIF"), "IMG_0042.HEIC", "image/heic",
                                 caption="Bags left by the bins")
    await kai.user.send_photo(jpeg_with_gps(5))
    await kai.user.send_document(encode(picture(6), "WEBP"), "side.webp", "image/webp")
    await kai.user.send_photo(jpeg_with_gps(8))
    await kai.expect("📷 Photo 3 of 3 received. Now share the location", after=mark)
    refusal = await kai.expect("the most one report takes", after=mark)
    assert refusal["text"] == "You have already sent 3 photos, the most one report takes. Now share the location."
    acks = [t for t in kai.texts() if t.startswith("📷 Photo")]
    assert [a.split(" received")[0] for a in acks] == ["📷 Photo 1 of 3", "📷 Photo 2 of 3", "📷 Photo 3 of 3"]
    mark = kai.last_id()
    await kai.user.send_location(*INSIDE)
    card = await kai.expect("📋 Please check your report:", after=mark)
    assert "Photos: 3" in card["text"] and "Description: Bags left by the bins" in card["text"]
    await submit(kai, card)
    [case] = _cases(db)
    with db.sessions() as s:
        photos = s.exec(select(Photo).where(Photo.case_id == case.id).order_by(Photo.id)).all()
    assert len(photos) == 3 and len({p.phash for p in photos}) == 3
    for photo in photos:
        stored = (Path(resident_app.settings.data_dir) / photo.path).read_bytes()
        clean = Image.open(io.BytesIO(stored))
        assert clean.format == "JPEG" and not clean.getexif()


async def test_a_different_problem_nearby_and_editing_the_summary(resident_app, emulator, db) -> None:
    other = make_person(db, 5102, locale="en")
    existing = seed_case(resident_app, person_id=other)
    liz = Resident(emulator.user(5014, "Liz", language_code="en"), emulator)
    make_person(db, 5014)  # agreed earlier; consent has its own tests
    await _to_photo_step(liz, emulator)
    mark = liz.last_id()
    await liz.user.send_photo(jpeg_with_gps(9))  # no caption this time
    await liz.expect("📷 Photo 1 of 3", after=mark)
    mark = liz.last_id()
    await liz.user.send_location(*offset(INSIDE, east_m=10))
    offer = await liz.expect("🔁 This may already be reported", after=mark)
    assert existing.number in offer["text"]
    mark = liz.last_id()
    await _press(liz, offer, ":diff")
    await liz.expect("✏️ Describe the problem", after=mark)
    mark = liz.last_id()
    await liz.user.send_text("A second, separate pile")
    card = await liz.expect("📋 Please check your report:", after=mark)
    await _press(liz, card, ":edit")
    await emulator.wait_for(lambda: any(":edit_desc" in b["callback_data"] for b in buttons(_now(liz, card))))
    mark = liz.last_id()
    await _press(liz, card, ":edit_desc")
    await liz.expect("✏️ Send the new description", after=mark)
    mark = liz.last_id()
    await liz.user.send_text("Second pile, by the bike rack")
    card = await liz.expect("📋 Please check your report:", after=mark)
    assert "Description: Second pile, by the bike rack" in card["text"]
    done = await submit(liz, card)
    number = done["text"].split("case ")[1].split(".")[0]
    with db.sessions() as s:
        new = s.exec(select(Case).where(Case.number == number)).one()
        assert new.id != existing.id and new.description == "Second pile, by the bike rack"
        assert s.get(Case, existing.id).report_count == 1


async def test_a_pdf_named_like_a_photo_is_refused_and_nothing_is_lost(resident_app, emulator, db) -> None:
    eve = Resident(emulator.user(5005, "Eve", language_code="en"), emulator)
    make_person(db, 5005)  # agreed earlier; consent has its own tests
    mark = eve.last_id()
    await eve.user.send_command("/report")
    menu = await eve.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await _press(eve, menu, ":kind:environment")
    await emulator.wait_for(lambda: ":cat:" in str(_now(eve, menu).get("reply_markup")))
    await _press(eve, menu, ":cat:exposed_garbage")
    await eve.expect("📷 Send one to three photos", after=menu["message_id"] - 1)
    mark = eve.last_id()
    await eve.user.send_document(b"%PDF-1.7\n%fake\n", "photo.jpg", "image/jpeg")
    refusal = await eve.expect("not a picture", after=mark)
    assert refusal["text"] == "This is not a picture I can read. Please send a JPEG, PNG, WebP or HEIC image."
    mark = eve.last_id()
    await eve.user.send_location(*INSIDE)  # still no usable photo: the category needs one
    refusal = await eve.expect("needs a photo first", after=mark)
    assert not _cases(db)


async def test_a_location_outside_the_map_is_refused(resident_app, emulator, db) -> None:
    sam = Resident(emulator.user(5006, "Sam", language_code="en"), emulator)
    make_person(db, 5006)  # agreed earlier; consent has its own tests
    await _to_location_step(sam, emulator)
    mark = sam.last_id()
    await sam.user.send_location(*OUTSIDE)
    refusal = await sam.expect("outside the area OneGrid covers", after=mark)
    assert refusal["text"].startswith("📍 This place (39.90420, 116.40740) is outside the area OneGrid covers")
    # The step is not lost: the right place is taken next.
    mark = sam.last_id()
    await sam.user.send_location(*INSIDE)
    await sam.expect("📋 Please check your report:", after=mark)
    assert not _cases(db)


async def test_a_forwarded_location_or_a_venue_is_not_the_residents_position(resident_app, emulator, db) -> None:
    joe = Resident(emulator.user(5007, "Joe", language_code="en"), emulator)
    friend = emulator.user(5099, "Friend")
    make_person(db, 5007)  # agreed earlier; consent has its own tests
    await _to_location_step(joe, emulator)
    shared = await friend.send_location(*INSIDE)
    mark = joe.last_id()
    await joe.user.forward(shared["message"])
    refusal = await joe.expect("share your own current location", after=mark)
    assert "forwarded location" in refusal["text"]
    mark = joe.last_id()
    await joe.user.send_venue(*INSIDE, "Jing'an Temple", "1686 Nanjing Rd W")
    await joe.expect(lambda m: "share your own current location" in (m.get("text") or ""), after=mark)
    assert not _cases(db)
    with db.sessions() as s:
        assert not s.exec(select(Photo)).all()


async def test_a_duplicate_is_offered_and_accepted(resident_app, emulator, db) -> None:
    first = make_person(db, 5101, locale="zh_CN")
    original = seed_case(resident_app, person_id=first, description="垃圾桶满了，我叫王小明 13812345678")
    amy = Resident(emulator.user(5008, "Amy", language_code="en"), emulator)
    make_person(db, 5008)  # agreed earlier; consent has its own tests
    near = offset(INSIDE, north_m=20)
    mark = amy.last_id()
    await _to_location_step(amy, emulator)
    mark = amy.last_id()
    await amy.user.send_location(*near)
    offer = await amy.expect("🔁 This may already be reported", after=mark)
    assert f"case {original.number}, Exposed garbage, 20 m from you" in offer["text"]
    # another resident's words (and the phone and name in them) never reach Amy: category, status, time, distance
    assert "垃圾桶满了" not in offer["text"] and "王" not in offer["text"] and "5678" not in offer["text"]
    mark = amy.last_id()
    await _press(amy, offer, ":same:")
    thanks = await amy.expect("Your report was added to case", after=mark)
    assert original.number in thanks["text"]
    amy_id = person_of(db, 5008).id
    with db.sessions() as s:
        assert len(s.exec(select(Case)).all()) == 1
        case = s.get(Case, original.id)
        assert case.report_count == 2
        followers = s.exec(select(CaseFollower).where(CaseFollower.case_id == case.id)).all()
        assert sorted(f.kind for f in followers) == ["follower", "reporter"]
        [photo] = s.exec(select(Photo).where(Photo.case_id == case.id)).all()
        assert photo.uploader_id == amy_id
        receipt = s.exec(select(ReportReceipt).where(ReportReceipt.person_id == photo.uploader_id)).one()
        assert (receipt.kind, receipt.case_id) == ("follow", case.id)


async def test_two_taps_on_submit_make_one_case(resident_app, emulator, db) -> None:
    dan = Resident(emulator.user(5009, "Dan", language_code="en"), emulator)
    make_person(db, 5009)  # agreed earlier; consent has its own tests
    card, _ = await standard_report(dan)
    data = next(b["callback_data"] for b in buttons(card) if ":submit" in b["callback_data"])
    mark = dan.last_id()
    await dan.user.press(card, data)
    await dan.user.press(card, data)  # before the first tap was handled
    await dan.expect("Registered as case", after=mark)
    answers = await emulator.wait_for(
        lambda: [a for a in emulator.callback_answers if a["user_id"] == 5009 and a["data"] == data]
        if len([a for a in emulator.callback_answers if a["data"] == data]) == 2 else None)
    [case] = _cases(db)
    assert sorted(a["text"] for a in answers) == ["Already sent: case " + case.number + ".", "Sent."]
    with db.sessions() as s:
        assert len(s.exec(select(ReportReceipt)).all()) == 1
    await asyncio.sleep(1.5)  # any second "registered" message would be on its way by now
    assert sum("Registered as case" in t for t in dan.texts()) == 1


async def test_the_hourly_limit_is_polite_and_lifts_after_an_hour(resident_app, emulator, db, clock) -> None:
    busy = make_person(db, 5010, locale="en")
    for i in range(5):  # the default limit: 5 reports per hour
        seed_case(resident_app, person_id=busy, where=offset(INSIDE, east_m=10 * i))
        clock.advance(minutes=5)
    bea = Resident(emulator.user(5010, "Bea", language_code="en"), emulator)
    mark = bea.last_id()
    await bea.user.send_command("/report")
    refusal = await bea.expect("reports in the last hour", after=mark)
    assert refusal["text"] == ("You have made 5 reports in the last hour, the most we accept from one person. "
                               "Thank you for caring! Please try again after 11:00.")
    assert await _state(resident_app, 5010) is None  # no draft was started
    clock.advance(minutes=40)  # the first of the five is now more than an hour old
    mark = bea.last_id()
    await bea.user.send_command("/report")
    menu = await bea.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    # A street light needs no photo: the location button comes at once, and "No photo" is offered.
    assert "🕘 Exposed garbage" in [b["text"] for b in buttons(menu)]  # her recent category, one tap away
    await _press(bea, menu, ":kind:roads")
    await emulator.wait_for(lambda: ":cat:street_light_out" in str(_now(bea, menu).get("reply_markup")))
    mark = bea.last_id()
    await _press(bea, menu, ":cat:street_light_out")
    await bea.expect("this category does not need one", after=mark)
    assert bea.reply_keyboard_texts() == ["📍 Send my location", "⏭ No photo", "✖ Cancel"]
    mark = bea.last_id()
    await bea.user.send_location(*offset(INSIDE, north_m=5))
    await bea.expect("✏️ Describe the problem", after=mark)
    mark = bea.last_id()
    await bea.user.send_text("Lamp out for three nights")
    card = await bea.expect("📋 Please check your report:", after=mark)
    assert "Photos: 0" in card["text"]
    done = await submit(bea, card)
    number = done["text"].split("case ")[1].split(".")[0]
    with db.sessions() as s:
        case = s.exec(select(Case).where(Case.number == number)).one()
        assert case.category_code == "street_light_out"
        assert not s.exec(select(Photo).where(Photo.case_id == case.id)).all()


async def test_restart_mid_report_carries_on(resident_app, emulator, db, clock, tmp_path) -> None:
    from onegrid.app import stop_background
    from tests.bot.resident_kit import start_app

    roy = Resident(emulator.user(5011, "Roy", language_code="en"), emulator)
    make_person(db, 5011)  # agreed earlier; consent has its own tests
    await _to_location_step(roy, emulator)
    await stop_background(resident_app)  # the process goes away mid-report
    resident_app.engine.dispose()
    app = await start_app(db.url, emulator, tmp_path, clock)
    try:
        mark = roy.last_id()
        await roy.user.send_location(*INSIDE)
        card = await roy.expect("📋 Please check your report:", after=mark)
        assert "Photos: 1" in card["text"] and "Description: Overflowing bins" in card["text"]
        done = await submit(roy, card)
        assert "Registered as case" in done["text"]
    finally:
        await stop_background(app)
        app.engine.dispose()
    [case] = _cases(db)
    with db.sessions() as s:
        assert len(s.exec(select(Photo).where(Photo.case_id == case.id)).all()) == 1


async def test_cancel_leaves_nothing_and_consent_is_needed_first(resident_app, emulator, db) -> None:
    new = Resident(emulator.user(5012, "Nia", language_code="en"), emulator)
    mark = new.last_id()
    await new.user.send_command("/report")
    ask = await new.expect("Do you agree?", after=mark)
    assert person_of(db, 5012) is None  # nothing stored before consent
    mark = new.last_id()
    await _press(new, ask, "cs:yes:report")
    menu = await new.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await _press(new, menu, ":kind:environment")
    await emulator.wait_for(lambda: ":cat:" in str(_now(new, menu).get("reply_markup")))
    await _press(new, menu, ":cat:exposed_garbage")
    await new.expect("📷 Send one to three photos", after=menu["message_id"] - 1)
    mark = new.last_id()
    await new.user.send_photo(jpeg_with_gps(7))
    await new.expect("📷 Photo 1 of 3", after=mark)
    mark = new.last_id()
    await new.user.send_text("✖ Cancel")
    bye = await new.expect("Report cancelled", after=mark)
    assert bye["text"] == "Report cancelled. Nothing was stored."
    assert new.reply_keyboard_texts()[0] == "📝 Report a problem"
    assert not _cases(db) and await _state(resident_app, 5012) is None
    assert not list((Path(resident_app.settings.data_dir) / "photos").rglob("*.jpg"))


async def test_declining_consent_stores_nothing(resident_app, emulator, db) -> None:
    mo = Resident(emulator.user(5013, "Mo", language_code="de"), emulator)
    mark = mo.last_id()
    await mo.user.send_command("/start")
    greeting = await mo.expect("Do you agree?", after=mark)
    assert "/lang switches between 中文 and English" in greeting["text"]
    mark = mo.last_id()
    await _press(mo, greeting, "cs:no")
    reply = await mo.expect("nothing about you is stored", after=mark)
    assert reply["text"].startswith("Understood")
    assert person_of(db, 5013) is None


# -- helpers ----------------------------------------------------------------------------------------

def _now(resident: Resident, message: dict) -> dict:
    return next(m for m in resident.messages() if m["message_id"] == message["message_id"])


async def _press(resident: Resident, message: dict, part: str) -> None:
    from tests.bot.resident_kit import press_data_contains

    await press_data_contains(resident, message, part)


async def _to_photo_step(resident: Resident, emulator) -> None:  # noqa: ANN001
    mark = resident.last_id()
    await resident.user.send_command("/report")
    menu = await resident.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await _press(resident, menu, ":kind:environment")
    await emulator.wait_for(lambda: ":cat:exposed_garbage" in str(_now(resident, menu).get("reply_markup")))
    await _press(resident, menu, ":cat:exposed_garbage")
    await resident.expect("📷 Send one to three photos", after=menu["message_id"] - 1)


async def _to_location_step(resident: Resident, emulator) -> None:  # noqa: ANN001
    mark = resident.last_id()
    await resident.user.send_command("/report")
    menu = await resident.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await _press(resident, menu, ":kind:environment")
    await emulator.wait_for(lambda: ":cat:exposed_garbage" in str(_now(resident, menu).get("reply_markup")))
    await _press(resident, menu, ":cat:exposed_garbage")
    await resident.expect("📷 Send one to three photos", after=menu["message_id"] - 1)
    mark = resident.last_id()
    await resident.user.send_photo(jpeg_with_gps(), caption="Overflowing bins")
    await resident.expect("📷 Photo 1 of 3", after=mark)


async def _state(app, user_id: int) -> str | None:  # noqa: ANN001
    from aiogram.fsm.storage.base import StorageKey

    key = StorageKey(bot_id=app.bot.id, chat_id=user_id, user_id=user_id)
    return await app.dispatcher.storage.get_state(key)
