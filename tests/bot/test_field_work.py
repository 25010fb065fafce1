"""Field work beside the order, through the real bot and the loopback Bot API, on both stores:
camera snapshots on a machine case's order, progress notes, and going off duty with held orders.

The camera is a loopback HTTP server (no internet) serving a JPEG with EXIF, an error, and a path on a
host that is not allowed; its request log says what OneGrid fetched.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import imagehash
import pytest
from PIL import Image
from sqlmodel import select

from bot.emulator import BotApiEmulator
from models.field import CaseSnapshot, OffDutyHandover, ProgressNote, SnapshotOutcome
from models.lifecycle import Status
from models.resident import CaseFollower, FollowKind
from models.tables import Case, CaseEvent, CaseSource, Person, Photo
from models.work import CaseTask, TaskStatus
from onegrid.app import OneGrid, build, start_background, stop_background
from onegrid.clock import FakeClock
from services import handover
from services.api_keys import authenticate, create_key
from services.intake_machine import MachineReport, intake_event
from tests.bot.conftest import harness_settings
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
    picture,
    point_in,
    report,
    world,
)


# -- the camera --------------------------------------------------------------------------------------------


def jpeg_with_exif(seed: int) -> bytes:
    image = Image.open(io.BytesIO(picture(seed)))
    exif = Image.Exif()
    exif[0x010F] = "CamMaker"  # Make
    exif[0x0131] = "secret-firmware"  # Software
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


class Camera:
    """A loopback HTTP server: /snap.jpg is a JPEG (with EXIF), /broken answers 500, anything else 404."""

    def __init__(self) -> None:
        self.jpeg = jpeg_with_exif(41)
        self.requests: list[str] = []
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                camera.requests.append(self.path)
                if self.path == "/snap.jpg":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(camera.jpeg)))
                    self.end_headers()
                    self.wfile.write(camera.jpeg)
                    return
                self.send_response(500 if self.path == "/broken" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def camera() -> Iterator[Camera]:
    cam = Camera()
    cam.thread.start()
    yield cam
    cam.server.shutdown()
    cam.server.server_close()


@pytest.fixture
async def onegrid(db, clock: FakeClock, emulator: BotApiEmulator, tmp_path: Path,
                  request: pytest.FixtureRequest) -> AsyncIterator[OneGrid]:
    """OneGrid as in tests/bot/conftest.py; a test marked `snapshot_hosts` gets the camera's host allowed."""
    settings = harness_settings(db.url, emulator, tmp_path)
    if "camera" in request.fixturenames:
        cam = request.getfixturevalue("camera")
        settings = settings.model_copy(update={"snapshot_hosts": f"127.0.0.1:{cam.port}, cameras.example"})
    app = build(settings, clock=clock)
    await start_background(app, polling_timeout=1)
    yield app
    await stop_background(app)
    app.engine.dispose()


def camera_event(ctx, media_urls: list[str], event_id: str = "ev-1") -> Case:  # noqa: ANN001
    _row, token = create_key(ctx, name="camera gateway", scopes=["intake"])
    principal = authenticate(ctx, token=token)
    lat, lon = point_in(GRID)
    result = intake_event(ctx, principal=principal, report=MachineReport(
        source=CaseSource.CAMERA, event_id=event_id, device_id="cam-7", category_code="exposed_garbage",
        lat=lat, lon=lon, description="Garbage detected", media_urls=media_urls))
    return result.case


def links_of(message: dict) -> list[str]:
    entities = message.get("caption_entities") or message.get("entities") or []
    return [e["url"] for e in entities if e["type"] == "text_link"]


# -- camera snapshots -----------------------------------------------------------------------------------------


async def test_a_camera_snapshot_is_the_orders_photo_cleaned_and_the_links_not_fetched_stay_links(
        world, emulator, db, clock, camera) -> None:
    add_worker(db.sessions, clock.now(), 9301)
    worker = emulator.user(9301, first_name="W", language_code="en")
    good, broken = camera.url("/snap.jpg"), camera.url("/broken")
    elsewhere = camera.url("/other.jpg", host="localhost")  # the same server, but not an allowed host
    case = await asyncio.to_thread(camera_event, world.ctx, [good, elsewhere, broken])

    [order] = await worker.wait_inbox(1, timeout=15)
    assert "photo" in order, "the order is the snapshot with the order as its caption"
    assert order["caption"].startswith(f"🆕 Work order {case.number}\n")
    assert "Source: camera" in order["caption"] and "📷 Camera snapshot: 1 · 2" in order["caption"]
    assert [u for u in links_of(order) if "uri.amap" not in u and "google" not in u] == [elsewhere, broken]
    sent = emulator.files.get(order["photo"][-1]["file_id"]).data
    uploaded = Image.open(io.BytesIO(sent))
    assert not uploaded.getexif(), "cleaned: no EXIF"
    original = Image.open(io.BytesIO(camera.jpeg))
    assert imagehash.phash(uploaded) - imagehash.phash(original) <= 6  # the camera's picture
    assert camera.requests.count("/snap.jpg") == 1 and camera.requests.count("/broken") == 1
    assert "/other.jpg" not in camera.requests  # a host not on the list is never asked
    with db.sessions() as s:
        rows = {r.url: r for r in s.exec(select(CaseSnapshot).where(CaseSnapshot.case_id == case.id))}
        photo = s.get(Photo, rows[good].photo_id)
        assert (rows[good].outcome, rows[elsewhere].outcome, rows[broken].outcome) == (
            SnapshotOutcome.FETCHED, SnapshotOutcome.REFUSED, SnapshotOutcome.FAILED)
        assert rows[broken].detail == "HTTP 500"
        assert (photo.case_id, photo.purpose) == (case.id, "report")
        assert (Path(world.settings.data_dir) / photo.path).read_bytes() == sent

    # A repeat of the camera's event folds into the case: nothing is fetched again.
    await asyncio.to_thread(camera_event, world.ctx, [good], "ev-2")
    assert camera.requests.count("/snap.jpg") == 1


async def test_with_fetching_off_the_order_links_the_snapshot(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9311, locale="zh_CN")
    worker = emulator.user(9311, first_name="李", language_code="zh-hans")
    url = "https://cameras.example/snap/7.jpg"
    case = await asyncio.to_thread(camera_event, world.ctx, [url])

    [order] = await worker.wait_inbox(1, timeout=15)
    assert "photo" not in order
    assert order["text"].startswith(f"🆕 新工单 {case.number}")
    assert "📷 摄像头抓拍：1" in order["text"]
    assert url in links_of(order)
    with db.sessions() as s:
        assert s.exec(select(CaseSnapshot)).all() == []  # nothing fetched, nothing recorded


# -- progress notes ---------------------------------------------------------------------------------------


def follow(db, clock, case_id: int, person_id: int) -> None:  # noqa: ANN001
    with db.sessions() as s:
        s.add(CaseFollower(case_id=case_id, person_id=person_id, kind=FollowKind.REPORTER, created_at=clock.now()))
        person = s.get(Person, person_id)
        person.consented_at = clock.now()
        s.add(person)
        s.commit()


def has_button(message: dict, prefix: str) -> bool:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return any(key.get("callback_data", "").startswith(prefix) for row in rows for key in row)


async def accept_order(worker, emulator) -> dict:  # noqa: ANN001
    """Accept the worker's first order; returns it as edited into the held order."""
    [order, *_] = await worker.wait_inbox(1, timeout=15)
    await worker.press(order, button(order, "wo:a:"))
    await emulator.wait_for(lambda: has_button(worker.inbox[0], "pn:m:"), timeout=15)
    return worker.inbox[0]


async def test_progress_notes_reach_the_supervisors_card_and_the_residents_my_masked(
        world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9321, name="Wang Wei", phone="13811112222")
    add_supervisor(db.sessions, clock.now(), 9322, area_code=STREET)
    resident_id = add_person(db.sessions, clock.now(), telegram_user_id=9323, roles=["resident"], name="Li",
                             phone="13912345678")
    worker = emulator.user(9321, first_name="Wang", language_code="en")
    boss = emulator.user(9322, first_name="Boss", language_code="en")
    li = emulator.user(9323, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx, reporter_id=resident_id)
    await asyncio.to_thread(follow, db, clock, case.id, resident_id)
    accepted = await accept_order(worker, emulator)
    assert button_texts(accepted) == ["📸 Complete", "↩️ Return to dispatcher", "🧭 Navigate", "📝 Progress note"]

    await worker.press(accepted, button(accepted, "pn:m:"))
    menu = (await worker.wait_inbox(2, timeout=15))[-1]
    assert menu["text"] == "How is it going? Choose a note, or write one."
    assert button_texts(menu) == ["📍 Arrived", "⏳ Waiting for materials", "🏢 Needs another department",
                                  "✏️ Write a note"]
    await worker.press(menu, button(menu, "pn:a:"))
    noted = (await worker.wait_inbox(3, timeout=15))[-1]
    assert noted["text"] == f"📝 Progress noted on case {case.number}: arrived on site."
    assert boss.inbox == []  # "arrived" is for the card, not a ping

    await worker.press(menu, button(menu, "pn:t:"))
    prompt = (await worker.wait_inbox(4, timeout=15))[-1]
    assert prompt["text"] == "Write your progress note in one message."
    await worker.send_text("Owner of the shop, call 13700001111, moves the bins at 5")
    assert (await worker.wait_inbox(5, timeout=15))[-1]["text"] == f"📝 Progress noted on case {case.number}: note."

    await worker.press(menu, button(menu, "pn:d:"))
    [card] = await boss.wait_inbox(1, timeout=15)
    text = card["text"]
    assert text.startswith(f"🏢 Case {case.number}: Wang Wei says another department is needed\n")
    assert "Progress:\n" in text and "arrived on site" in text and "needs another department" in text
    assert "note: Owner of the shop, call 137****1111, moves the bins at 5" in text
    assert "13700001111" not in text

    await li.send_command("/my")
    listing = await emulator.wait_for(lambda: next((m for m in li.inbox if has_button(m, "my:open:")), None),
                                      timeout=15)
    await li.press(listing, button(listing, "my:open:"))
    await emulator.wait_for(lambda: any(m.get("text", "").startswith(f"Case {case.number}") for m in li.inbox),
                            timeout=15)
    mine = next(m["text"] for m in li.inbox if m.get("text", "").startswith(f"Case {case.number}"))
    assert "Latest from the site:" in mine
    assert "a worker is on site" in mine and "another department is being asked to help" in mine
    assert "note from the site: Owner of the shop, call 137****1111, moves the bins at 5" in mine
    for secret in ("Wang", "13811112222", "1381111", "13700001111"):
        assert secret not in mine
    with db.sessions() as s:
        notes = s.exec(select(ProgressNote).where(ProgressNote.case_id == case.id).order_by(ProgressNote.id)).all()
        audit = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "progress")).all()
        assert [n.kind for n in notes] == ["arrived", "text", "needs_department"]
        assert notes[1].text == "Owner of the shop, call 13700001111, moves the bins at 5"  # stored as written
        assert len(audit) == 3 and all(e.from_status == e.to_status == Status.IN_PROGRESS for e in audit)
        assert "13700001111" not in " ".join(e.note for e in audit)


async def test_a_note_on_an_order_that_is_not_yours_is_refused(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9331)
    add_worker(db.sessions, clock.now(), 9332, on_duty=False)
    holder = emulator.user(9331, first_name="H", language_code="en")
    other = emulator.user(9332, first_name="O", language_code="en")
    await asyncio.to_thread(report, world.ctx)
    accepted = await accept_order(holder, emulator)
    # Another worker replays the holder's "arrived" button (a forged or forwarded callback).
    await other.send_command("/tasks")
    await other.wait_inbox(1, timeout=15)
    task_id = int(button(accepted, "pn:m:").rsplit(":", 1)[1])
    mine = other.inbox[-1]
    emulator.callback_queries["f1"] = {"user_id": 9332, "data": f"pn:a:{task_id}", "chat_id": 9332,
                                       "message_id": mine["message_id"], "answered": False}
    emulator.queue_update("callback_query", {"id": "f1", "from": other.as_user(), "message": mine,
                                             "chat_instance": "1", "data": f"pn:a:{task_id}"})
    answer = await emulator.wait_for(lambda: next((a for a in emulator.callback_answers
                                                   if a["callback_query_id"] == "f1"), None), timeout=15)
    assert answer["text"] == "This work order is not yours." and answer["show_alert"]
    with db.sessions() as s:
        assert s.exec(select(ProgressNote)).all() == []


# -- off duty with held orders --------------------------------------------------------------------------------


async def test_going_off_duty_asks_and_hand_back_now_offers_the_orders_to_others(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9341, name="Zhao")
    add_supervisor(db.sessions, clock.now(), 9342, area_code=STREET)
    holder = emulator.user(9341, first_name="Zhao", language_code="en")
    boss = emulator.user(9342, first_name="Boss", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    await accept_order(holder, emulator)
    add_worker(db.sessions, clock.now(), 9343)
    relief = emulator.user(9343, first_name="R", language_code="en")

    await holder.send_command("/duty")
    question = (await holder.wait_inbox(2, timeout=15))[-1]
    assert question["text"] == ("You hold 1 work order(s). Hand them back to the dispatcher now, or keep them? "
                                "Kept orders go back to the dispatcher if you are not on duty again within 30 min.")
    assert button_texts(question) == ["↩️ Hand them back now", "⏸ Keep them"]
    with db.sessions() as s:
        assert s.exec(select(Person).where(Person.telegram_user_id == 9341)).one().on_duty  # nothing changed yet

    await holder.press(question, button(question, "ho:b"))
    [offer] = await relief.wait_inbox(1, timeout=15)
    assert offer["text"].startswith(f"🆕 Work order {case.number}")
    await emulator.wait_for(lambda: holder.inbox[-1].get("text", "").startswith("⚪"), timeout=15)
    assert holder.inbox[-1]["text"] == ("⚪ You are off duty and will get no new work orders.\n"
                                        "Held orders handed back to the dispatcher: 1.")
    [told] = await boss.wait_inbox(1, timeout=15)
    assert told["text"] == (f"↩️ Zhao went off duty and handed back 1 held order(s): {case.number}. "
                            "They are offered to the workers on duty.")
    with db.sessions() as s:
        task = s.exec(select(CaseTask).where(CaseTask.case_id == case.id)).one()
        assert (task.status, task.assignee_id) == (TaskStatus.OFFERED, None)
        assert s.get(Case, case.id).status == Status.DISPATCHED
        assert s.exec(select(OffDutyHandover)).all() == []


async def test_kept_orders_go_back_to_dispatch_when_the_grace_period_ends(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9351, name="Qian", locale="zh_CN")
    add_supervisor(db.sessions, clock.now(), 9352, area_code=STREET, locale="zh_CN")
    holder = emulator.user(9351, first_name="钱", language_code="zh-hans")
    boss = emulator.user(9352, first_name="主管", language_code="zh-hans")
    case = await asyncio.to_thread(report, world.ctx)
    await accept_order(holder, emulator)
    add_worker(db.sessions, clock.now(), 9353)
    relief = emulator.user(9353, first_name="R", language_code="en")

    await holder.send_command("/duty")
    question = (await holder.wait_inbox(2, timeout=15))[-1]
    assert question["text"].startswith("您手上有 1 个工单。")
    await holder.press(question, button(question, "ho:k"))
    await emulator.wait_for(lambda: holder.inbox[-1].get("text", "").startswith("⚪"), timeout=15)
    assert "30" in holder.inbox[-1]["text"] and "1" in holder.inbox[-1]["text"].splitlines()[-1]

    clock.advance(minutes=29)
    assert await asyncio.to_thread(handover.release_due, world.ctx) == 0
    assert relief.inbox == [] and boss.inbox == []
    with db.sessions() as s:
        assert len(s.exec(select(OffDutyHandover)).all()) == 1
    clock.advance(minutes=2)
    # The job as the scheduler runs it (its own minute tick may have run it first: the effect is the same).
    await asyncio.to_thread(handover.release_due, world.ctx)

    [offer] = await relief.wait_inbox(1, timeout=15)
    assert offer["text"].startswith(f"🆕 Work order {case.number}")
    await emulator.wait_for(lambda: case.number in holder.inbox[-1].get("text", ""), timeout=15)
    assert holder.inbox[-1]["text"] == f"您已离岗：工单{case.number}已转派他人。"
    [told] = await boss.wait_inbox(1, timeout=15)
    assert told["text"].startswith("⏰ Qian") and case.number in told["text"] and "30" in told["text"]
    with db.sessions() as s:
        task = s.exec(select(CaseTask).where(CaseTask.case_id == case.id)).one()
        assert (task.status, task.assignee_id) == (TaskStatus.OFFERED, None)
        assert s.exec(select(OffDutyHandover)).all() == []
    assert await asyncio.to_thread(handover.release_due, world.ctx) == 0  # once only


async def test_back_on_duty_within_the_grace_period_keeps_the_orders(world, emulator, db, clock) -> None:
    worker_id = add_worker(db.sessions, clock.now(), 9361)
    holder = emulator.user(9361, first_name="S", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    await accept_order(holder, emulator)

    await holder.send_command("/duty")
    question = (await holder.wait_inbox(2, timeout=15))[-1]
    await holder.press(question, button(question, "ho:k"))
    await emulator.wait_for(lambda: holder.inbox[-1].get("text", "").startswith("⚪"), timeout=15)
    assert holder.inbox[-1]["text"].endswith(
        "Held orders you keep: 1. If you are not on duty again within 30 min, they go back to the dispatcher.")
    clock.advance(minutes=20)
    await holder.send_command("/duty")
    await emulator.wait_for(lambda: holder.inbox[-1].get("text", "").startswith("🟢"), timeout=15)
    clock.advance(minutes=20)
    assert await asyncio.to_thread(handover.release_due, world.ctx) == 0
    with db.sessions() as s:
        task = s.exec(select(CaseTask).where(CaseTask.case_id == case.id)).one()
        assert (task.status, task.assignee_id) == (TaskStatus.ACCEPTED, worker_id)
        assert s.get(Case, case.id).status == Status.IN_PROGRESS
