"""Completing a work order with photo and location proof, through the real bot and the loopback Bot API.

Every refusal says what to do next and loses nothing the worker already sent; each test checks
both what the worker (and the supervisor) saw and what the store holds.
"""

from __future__ import annotations

import asyncio

from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case, Photo, Proof
from models.work import Completion, CompletionStatus
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
    await emulator.wait_for(lambda: worker.inbox[0][key].startswith("✅ You accepted"))
    await worker.press(worker.inbox[0], button(worker.inbox[0], "wt:c:"))
    await emulator.wait_for(lambda: worker.inbox[-1].get("text", "").startswith(f"Case {case.number}: send"))
    return worker, boss, case


async def next_reply(worker, emulator, before: int) -> dict:  # noqa: ANN001
    await emulator.wait_for(lambda: len(worker.inbox) > before, chat_id=worker.id)
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


async def photo_then_location_step(worker, emulator, db) -> None:  # noqa: ANN001
    text = await send_photo_and_read(worker, emulator, picture(101))
    assert text == "Photo 1 of 3 received. Send another, or press Done with photos."
    before = len(worker.inbox)
    await worker.press(worker.inbox[-1], button(worker.inbox[-1], "wp:d:"))
    prompt = await next_reply(worker, emulator, before)
    assert prompt["text"].startswith("Now share your location on site")
    assert emulator.reply_keyboard(WORKER)["keyboard"][0][0]["request_location"] is True


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
    assert await send_photo_and_read(worker, emulator, picture(201)) == (
        "Photo 1 of 3 received. Send another, or press Done with photos.")
    for kind, data, name, expected in PHOTO_REFUSALS:
        before = len(worker.inbox)
        if kind == "document":
            await worker.send_document(data, name, "image/jpeg")
        else:
            await worker.send_photo(data)
        assert (await next_reply(worker, emulator, before))["text"] == expected, name
        assert len(completion(db).photo_ids) == 1 and len(proof_photos(db)) == 1  # the good photo is kept
    # And the flow goes on: another good photo is taken; nobody was bothered meanwhile.
    assert await send_photo_and_read(worker, emulator, picture(202)) == (
        "Photo 2 of 3 received. Send another, or press Done with photos.")
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
    await worker.press(worker.inbox[-1], button(worker.inbox[-1], "wp:x:"))
    paused = await next_reply(worker, emulator, before)
    assert paused["text"].startswith("Paused. Your photos and location are kept")
    accepted = worker.inbox[0]
    before = len(worker.inbox)
    await worker.press(accepted, button(accepted, "wt:c:"))
    resumed = await next_reply(worker, emulator, before)
    assert resumed["text"] == (f"Case {case.number}: send 1 to 3 photos of the finished work.\n"
                               "Photos kept from before: 1.")
    assert len(completion(db).photo_ids) == 1


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
