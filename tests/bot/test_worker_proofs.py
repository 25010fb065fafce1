"""Completing a work order with photo and location proof, through the real bot and the loopback Bot API.

Every refusal says what to do next and loses nothing the worker already sent; each test checks
both what the worker (and the supervisor) saw and what the store holds.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case, Photo, Proof
from models.work import Completion, CompletionStatus
from tests.bot import taps
from tests.bot.forged import forge_press
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    STREET,
    add_supervisor,
    add_worker,
    answer_to,
    bomb_png,
    button,
    button_texts,
    emulator,
    offset,
    pdf_bytes,
    picture,
    report,
    settle,
    truncated_jpeg,
    world,
)
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)

WORKER, BOSS = 9101, 9102
RESIDENT_PICTURE = picture(900)


RECEIPT_1 = ("Photo 1 of 3 received.\nSend another photo, or share your location on site to submit: tap 📎 → "
             "Location → Share My Live Location (preferred), or press the button below.")


# A reply goes out at the chat's pace (about one a second) after the ones before it; on a machine busy
# with the whole suite, a step here took more than the default 5 s now and then.
REPLY_WAIT = 15.0


async def accepted_order(world, emulator, db, clock, *, resident_photo: bool = False):  # noqa: ANN001, ANN201
    """A worker who has accepted a case and pressed Complete; their supervisor."""
    add_worker(db.sessions, clock.now(), WORKER)
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=STREET, name="Boss Li")
    worker = emulator.user(WORKER, first_name="Wang", language_code="en")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx, photo=RESIDENT_PICTURE if resident_photo else None)
    [order] = await worker.wait_inbox(1)  # one message: the resident's photo with the order as caption, or text
    await worker.press(order, button(order, "wo:a:"))
    await answer_to(emulator, WORKER)
    key = "caption" if resident_photo else "text"
    await emulator.wait_for(lambda: worker.inbox[0][key].startswith("✅ You accepted"), timeout=REPLY_WAIT)
    await worker.press(worker.inbox[0], button(worker.inbox[0], "wt:c:"))
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith(f"Case {case.number}: send"),
                            timeout=REPLY_WAIT)
    return worker, boss, case


async def next_reply(worker, emulator, before: int) -> dict:  # noqa: ANN001
    await emulator.wait_for(lambda: len(worker.inbox) > before, timeout=REPLY_WAIT, chat_id=worker.id)
    return worker.inbox[before]


async def send_photo_and_read(worker, emulator, data: bytes) -> str:  # noqa: ANN001
    before = len(worker.inbox)
    await worker.send_photo(data)
    return (await next_reply(worker, emulator, before))["text"]


def completion(db) -> Completion:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(Completion)).one()


def proof_photos(db) -> list[Photo]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(Photo).where(Photo.purpose == "proof")).all())


def reply_keyboard_texts(emulator, user_id: int) -> list[str]:  # noqa: ANN001
    return [key["text"] for row in (emulator.reply_keyboard(user_id) or {}).get("keyboard", []) for key in row]


async def photo_then_location_step(worker, emulator, db) -> None:  # noqa: ANN001
    """One photo: its receipt brings the location button, so the location comes next (no "done" step)."""
    text = await send_photo_and_read(worker, emulator, picture(101))
    assert text == RECEIPT_1
    assert emulator.reply_keyboard(WORKER)["keyboard"][0][0]["request_location"] is True
    assert reply_keyboard_texts(emulator, WORKER) == ["📍 Send my current location", "🔁 Retake photos",
                                                      "⏸ Finish later"]


async def test_good_photo_and_live_location_on_site_go_to_the_supervisor(world, emulator, db, clock) -> None:
    worker, boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    clock.advance(minutes=6)  # working on site
    lat, lon = offset(case.lat, case.lon, north_m=25)
    before = len(worker.inbox)
    await worker.send_location(lat, lon, horizontal_accuracy=12, live_period=900)
    done = await next_reply(worker, emulator, before)
    assert done["text"] == (f"✅ Proof submitted for case {case.number}: 25 m from the case point (live location).\n"
                            "A supervisor will verify it.")
    assert emulator.reply_keyboard(WORKER) is None  # the location button is gone

    card = (await boss.wait_inbox(1))[0]
    text = card["text"]
    assert text.startswith(f"🔍 Please verify case {case.number}\nCategory: Exposed garbage\n")
    assert "Location: 25 m from the case point (live location, accuracy ±12 m)" in text
    assert "Time on site: 6 min" in text and "Flagged" not in text
    assert button_texts(card) == ["✅ Approve and close", "🔁 Reject: rework"]
    settle(clock)
    [_, proof_photo] = await boss.wait_inbox(2)
    assert proof_photo["caption"].startswith(f"Proof 1/1 · {case.number}")
    with db.sessions() as s:
        stored = s.get(Case, case.id)
        proof = s.exec(select(Proof)).one()
    assert stored.status == Status.AWAITING_VERIFICATION
    assert (proof.live, proof.flagged, round(proof.distance_m), proof.accuracy_m) == (True, False, 25, 12.0)
    assert completion(db).status == CompletionStatus.SUBMITTED


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
async def test_from_order_to_submitted_proof_takes_at_most_four_interactions(locale, world, emulator, db,
                                                                             clock) -> None:
    """Accept, Complete, a photo, the location: the photo's receipt asks for the location, which submits."""
    add_worker(db.sessions, clock.now(), WORKER, locale=locale)
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=STREET, name="Boss Li")
    worker = emulator.user(WORKER, first_name="Wang", language_code="en" if locale == "en" else "zh-hans")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await worker.wait_inbox(1)
    since = taps.mark(emulator)
    await worker.press(order, button(order, "wo:a:"))
    await emulator.wait_for(lambda: button_or_none(worker.inbox[0], "wt:c:"), timeout=REPLY_WAIT)
    await worker.press(worker.inbox[0], button(worker.inbox[0], "wt:c:"))
    await emulator.wait_for(lambda: case.number in worker.inbox[-1].get("text", "") and len(worker.inbox) >= 2,
                            timeout=REPLY_WAIT)
    before = len(worker.inbox)
    await worker.send_photo(picture(151))
    receipt = await next_reply(worker, emulator, before)
    keyboard = emulator.reply_keyboard(WORKER)
    assert keyboard["keyboard"][0][0]["request_location"] is True  # with the first photo's receipt
    before = len(worker.inbox)
    await worker.send_location(*offset(case.lat, case.lon, north_m=15), horizontal_accuracy=10, live_period=900)
    done = await next_reply(worker, emulator, before)

    sent = taps.interactions(emulator, WORKER, since)
    assert len(sent) <= 4, sent
    assert [s[:10] for s in sent] == ["press wo:a", "press wt:c", "photo", "location"]
    if locale == "en":
        assert receipt["text"] == RECEIPT_1
        assert done["text"] == (f"✅ Proof submitted for case {case.number}: 15 m from the case point "
                                "(live location).\nA supervisor will verify it.")
    else:
        assert receipt["text"] == ("已收到第1张照片（最多3张）。\n可继续发送照片，或在现场发送位置即可提交：点击 📎 → 位置 → "
                                   "共享实时位置（推荐），或点击下方按钮。")
        assert [key["text"] for row in keyboard["keyboard"] for key in row] == [
            "📍 发送我的当前位置", "🔁 重拍照片", "⏸ 稍后继续"]
        assert done["text"] == f"✅ 案件{case.number}的办结材料已提交：距案件点15米（实时位置）。\n监督员将进行核查。"
    assert emulator.reply_keyboard(WORKER) is None  # the location button is gone
    [card] = await boss.wait_inbox(1)
    assert case.number in card["text"]
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.AWAITING_VERIFICATION
        proof = s.exec(select(Proof)).one()
    assert (proof.live, round(proof.distance_m)) == (True, 15)
    kept = completion(db)
    assert (kept.status, len(kept.photo_ids)) == (CompletionStatus.SUBMITTED, 1)


def button_or_none(message: dict, prefix: str) -> str | None:
    try:
        return button(message, prefix)
    except LookupError:
        return None


async def test_more_photos_until_the_location_arrives(world, emulator, db, clock) -> None:
    """After the first receipt the worker may go on with photos; the location submits them all."""
    worker, boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    second = await send_photo_and_read(worker, emulator, picture(102))
    assert second.startswith("Photo 2 of 3 received.\nSend another photo, or share your location")
    third = await send_photo_and_read(worker, emulator, picture(103))
    assert third.startswith("Photo 3 of 3 received.\nNow share your location on site")
    assert emulator.reply_keyboard(WORKER)["keyboard"][0][0]["request_location"] is True
    before = len(worker.inbox)
    await worker.send_location(*offset(case.lat, case.lon, north_m=10), horizontal_accuracy=10)
    done = await next_reply(worker, emulator, before)
    assert done["text"].startswith(f"✅ Proof submitted for case {case.number}: 10 m from the case point")
    await boss.wait_inbox(1)
    assert len(completion(db).photo_ids) == 3 and len(proof_photos(db)) == 3


async def test_retake_from_the_receipts_keyboard_drops_the_photos(world, emulator, db, clock) -> None:
    worker, _boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    before = len(worker.inbox)
    await worker.send_text("🔁 Retake photos")
    asked = await next_reply(worker, emulator, before)
    assert asked["text"] == "Photos removed. Send 1 to 3 new photos."
    assert completion(db).photo_ids == []
    before = len(worker.inbox)
    await worker.send_text("done?")  # words instead of a photo: what the step needs now
    assert (await next_reply(worker, emulator, before))["text"] == "Send a photo of the finished work."
    before = len(worker.inbox)
    await worker.send_location(*offset(case.lat, case.lon, north_m=10))  # no photo now: refused, nothing lost
    refusal = await next_reply(worker, emulator, before)
    assert refusal["text"] == "First send at least one photo of the finished work, then your location."
    assert await send_photo_and_read(worker, emulator, picture(104)) == RECEIPT_1
    before = len(worker.inbox)
    await worker.send_text("done?")  # with a photo in, the location is what is missing
    hint = await next_reply(worker, emulator, before)
    assert hint["text"] == RECEIPT_1.split("\n", 1)[1]
    assert emulator.reply_keyboard(WORKER)["keyboard"][0][0]["request_location"] is True
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS and s.exec(select(Proof)).all() == []


PHOTO_REFUSALS = [
    ("document", bomb_png(), "bomb.png",
     "This picture has far too many pixels for a camera photo and was refused. Send the photo from your camera."),
    ("document", truncated_jpeg(), "cut.jpg", "This picture is incomplete (the file is cut off). Send it again."),
    ("document", pdf_bytes(), "site.jpg", "This is not a picture we can read. Send a photo (JPEG, PNG, WebP or HEIC)."),
    ("photo", RESIDENT_PICTURE, None,
     "This is the same picture as the resident's photo. Photograph the place as it is now, after the work."),
    ("photo", picture(201), None,
     "This picture was already used as proof. Take a new photo of the place as it is now."),
]


async def test_bad_photos_are_refused_and_the_good_one_is_kept(world, emulator, db, clock) -> None:
    """A decompression bomb, a truncated JPEG, a PDF named .jpg, the resident's photo and a photo used before."""
    worker, boss, _case = await accepted_order(world, emulator, db, clock, resident_photo=True)
    assert await send_photo_and_read(worker, emulator, picture(201)) == RECEIPT_1
    for kind, data, name, expected in PHOTO_REFUSALS:
        before = len(worker.inbox)
        if kind == "document":
            await worker.send_document(data, name, "image/jpeg")
        else:
            await worker.send_photo(data)
        assert (await next_reply(worker, emulator, before))["text"] == expected, name
        assert len(completion(db).photo_ids) == 1 and len(proof_photos(db)) == 1  # the good photo is kept
    # And the flow goes on: another good photo is taken; nobody was bothered meanwhile.
    assert await send_photo_and_read(worker, emulator, picture(202)) == RECEIPT_1.replace("Photo 1", "Photo 2")
    assert boss.inbox == []


def _far_text(distance: int, allowed: int = 120) -> str:
    return (f"📍 You are {distance} m from the case point; at most {allowed} m is accepted here. Go to the place and send "
            "your location again.\nOr, if you are sure you are in the right place, submit it flagged for the "
            "supervisor to judge.")


async def test_forwarded_stale_far_and_vague_locations_are_refused(world, emulator, db, clock) -> None:
    worker, boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    near = offset(case.lat, case.lon, north_m=20)

    async def location_reply(send) -> dict:  # noqa: ANN001
        before = len(worker.inbox)
        await send()
        return await next_reply(worker, emulator, before)

    colleague = emulator.user(9109, first_name="Zhao", language_code="en")
    shared = await colleague.send_location(*near)
    reply = await location_reply(lambda: worker.forward(shared["message"], from_user=colleague))
    assert reply["text"] == ("This location was forwarded. Send your own location from the site, not a forwarded "
                             "one.")

    emulator.date_lag[0] = 600  # the next message is dated ten minutes ago
    reply = await location_reply(lambda: worker.send_location(*near, horizontal_accuracy=10))
    emulator.date_lag[0] = 0
    assert reply["text"] == ("This location was sent 10 min ago, which is too old to prove you are on site. "
                             "Send your location again now.")

    reply = await location_reply(lambda: worker.send_venue(*near, "Noodle shop", "1 Nanjing East Road"))
    assert reply["text"].startswith("This is a place picked on the map, not your position.")

    doubtful = offset(case.lat, case.lon, north_m=250)  # near enough that the supervisor may judge it
    reply = await location_reply(lambda: worker.send_location(*doubtful, horizontal_accuracy=20))
    assert reply["text"] == _far_text(250)
    assert button_texts(reply) == ["⚠️ Submit anyway for the supervisor to judge", "⏸ Finish later"]

    reply = await location_reply(lambda: worker.send_location(*near, horizontal_accuracy=1400))
    assert reply["text"].startswith("📍 Your location is only accurate to ±1400 m; at most ±100 m is accepted.")

    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS and s.exec(select(Proof)).all() == []
    kept = completion(db)
    assert (kept.status, len(kept.photo_ids), kept.problems) == (CompletionStatus.DRAFT, 1, ["low_accuracy"])
    assert boss.inbox == []

    # Finally the right place, live: accepted.
    reply = await location_reply(lambda: worker.send_location(*near, horizontal_accuracy=8, live_period=600))
    assert reply["text"].startswith(f"✅ Proof submitted for case {case.number}: 20 m from the case point")
    await boss.wait_inbox(1)


async def test_a_precise_location_clearly_far_away_is_refused_with_no_submit_anyway(world, emulator, db,
                                                                                   clock) -> None:
    worker, boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    before = len(worker.inbox)
    await worker.send_location(*offset(case.lat, case.lon, east_m=600), horizontal_accuracy=20)
    refusal = await next_reply(worker, emulator, before)
    assert refusal["text"] == ("📍 You are 600 m from the case point (±20 m); at most 120 m is accepted. This cannot "
                               "be submitted: go to the place and send your location from there.")
    assert "⚠️ Submit anyway for the supervisor to judge" not in button_texts(refusal)
    kept = completion(db)
    assert (kept.status, kept.lat, kept.problems) == (CompletionStatus.DRAFT, None, [])
    with db.sessions() as s:
        assert s.exec(select(Proof)).all() == [] and s.get(Case, case.id).status == Status.IN_PROGRESS
    assert boss.inbox == []


async def test_a_far_location_can_be_submitted_flagged_for_the_supervisor(world, emulator, db, clock) -> None:
    worker, boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    before = len(worker.inbox)
    await worker.send_location(*offset(case.lat, case.lon, east_m=250), horizontal_accuracy=20)
    refusal = await next_reply(worker, emulator, before)
    assert refusal["text"] == _far_text(250)
    before = len(worker.inbox)
    await worker.press(refusal, button(refusal, "wp:f:"))
    done = await next_reply(worker, emulator, before)
    assert done["text"] == (f"✅ Proof submitted for case {case.number}: 250 m from the case point (static location).\n"
                            "It is flagged: the supervisor will judge the location.\nA supervisor will verify it.\n"
                            "Next time, please share a live location: it shows how long you were on site.")
    [card] = await boss.wait_inbox(1)
    assert "⚠️ Flagged by the worker: 250 m away, 120 m allowed" in card["text"]
    assert "Time on site: not measured (never within the allowed distance)" in card["text"]
    with db.sessions() as s:
        proof = s.exec(select(Proof)).one()
        assert s.get(Case, case.id).status == Status.AWAITING_VERIFICATION
    assert (proof.flagged, proof.live, round(proof.distance_m)) == (True, False, 250)


async def test_finishing_later_keeps_the_photos(world, emulator, db, clock) -> None:
    worker, _boss, case = await accepted_order(world, emulator, db, clock)
    await send_photo_and_read(worker, emulator, picture(401))
    before = len(worker.inbox)
    await worker.send_text("⏸ Finish later")  # on the reply keyboard of the photo's receipt
    paused = await next_reply(worker, emulator, before)
    assert paused["text"].startswith("Paused. Your photos and location are kept")
    assert emulator.reply_keyboard(WORKER) is None
    accepted = worker.inbox[0]
    before = len(worker.inbox)
    await worker.press(accepted, button(accepted, "wt:c:"))
    resumed = await next_reply(worker, emulator, before)
    assert resumed["text"] == (f"Case {case.number}: send 1 to 3 photos of the finished work.\n"
                               "Photos kept from before: 1.\nSend another photo, or share your location on site to "
                               "submit: tap 📎 → Location → Share My Live Location (preferred), or press the button "
                               "below.")
    assert emulator.reply_keyboard(WORKER)["keyboard"][0][0]["request_location"] is True
    assert len(completion(db).photo_ids) == 1
    before = len(worker.inbox)  # the kept photo is enough: the location submits it
    await worker.send_location(*offset(case.lat, case.lon, north_m=10), horizontal_accuracy=10)
    done = await next_reply(worker, emulator, before)
    assert done["text"].startswith(f"✅ Proof submitted for case {case.number}: 10 m")
    assert completion(db).status == CompletionStatus.SUBMITTED


async def test_a_live_location_walking_onto_the_site_is_accepted_when_it_arrives(world, emulator, db, clock) -> None:
    worker, boss, case = await accepted_order(world, emulator, db, clock)
    await photo_then_location_step(worker, emulator, db)
    before = len(worker.inbox)
    sharing = await worker.send_location(*offset(case.lat, case.lon, north_m=400), horizontal_accuracy=10,
                                         live_period=900)
    held = await next_reply(worker, emulator, before)  # clearly far, but live: it counts once it arrives
    assert held["text"] == ("📍 You are 400 m from the case point; at most 110 m is accepted here. Go to the place "
                            "and send your location again.\nKeep sharing your live location: it is accepted as soon as "
                            "you are there.")
    assert button_texts(held) == ["⏸ Finish later"]
    forged = forge_press(emulator, worker, held, button(held, "wp:x:").replace("wp:x:", "wp:f:"))
    await emulator.wait_for(lambda: emulator.callback_queries[forged]["answered"])
    [answer] = [a for a in emulator.callback_answers if a["callback_query_id"] == forged]
    assert answer["text"].startswith("📍 You are 400 m from the case point (±10 m)")  # no Submit anyway, even forged
    clock.advance(minutes=4)
    before = len(worker.inbox)
    await worker.edit_live_location(sharing, *offset(case.lat, case.lon, north_m=30), horizontal_accuracy=10)
    done = await next_reply(worker, emulator, before)
    assert done["text"] == (f"✅ Proof submitted for case {case.number}: 30 m from the case point (live location).\n"
                            "A supervisor will verify it.")
    clock.advance(minutes=5)  # still sharing, still there: the time on site grows
    await worker.edit_live_location(sharing, *offset(case.lat, case.lon, north_m=20), horizontal_accuracy=10)
    await emulator.wait_for(lambda: completion(db).last_seen_at == clock.now())
    card = (await boss.wait_inbox(1))[0]
    assert "Time on site: 4 min" in card["text"]  # as it was when the proof was submitted
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.AWAITING_VERIFICATION
        assert s.exec(select(Proof)).one().live is True
