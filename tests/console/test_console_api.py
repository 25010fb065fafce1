"""The console's HTTP routes against a running sandbox: what a browser gets and what each action does.

Messages "from the bot" are made the way OneGrid makes every message: a notification row that the
delivery queue sends to the (emulated) Bot API. Actions of personas are checked in the update the
bot receives, as Telegram would deliver it.
"""

from __future__ import annotations

import asyncio
import io

import httpx
from PIL import Image
from sqlmodel import func, select

from api.console import render_chat
from bot.sandbox import EXTRA_RESIDENT_BASE, LIVE_LOCATION_SECONDS
from models.lifecycle import Actor, Role
from models.tables import Area, CaseEvent, CaseSource, Person
from services.cases import report_case
from services.db import transaction
from services.notify import enqueue, enqueue_text
from onegrid.app import build
from tests.console.conftest import (
    CONSOLE_HEADERS,
    PEOPLE,
    EventStream,
    Running,
    grid_point,
    picture,
    sandbox_settings,
    seed_store,
    serve_sandbox,
    stop_sandbox,
)


def bot_says(running: Running, chat_id: int, text: str, reply_markup: dict | None = None) -> None:
    """Queue a message from the bot, sent by the real delivery queue."""
    ctx = running.app.ctx
    with transaction(ctx.sessions) as session:
        enqueue_text(session, chat_id=chat_id, text=text, now=ctx.clock.now(), reply_markup=reply_markup)
    ctx.on_notifications()


async def wait_chat(running: Running, client: httpx.AsyncClient, persona: int, predicate) -> dict:  # noqa: ANN001
    """The persona's chat as the console serves it, once `predicate(chat)` holds.

    The bot answers asynchronously (polling, handler, delivery queue); the emulator re-checks the
    condition on every request it gets.
    """
    sandbox = running.sandbox
    await sandbox.emulator.wait_for(lambda: predicate(render_chat(sandbox.chat(persona), persona)),
                                    timeout=10, chat_id=persona)
    response = await client.get(f"/console/api/personas/{persona}/chat")
    assert response.status_code == 200
    chat = response.json()
    assert predicate(chat)
    return chat


# ---------------------------------------------------------------------------- page and people


async def test_page_assets_and_demo_people(sandbox: Running, db) -> None:
    async with sandbox.client() as client:
        page = await client.get("/console")
        script = await client.get("/console/static/console.js")
        unknown = await client.get("/console/static/..%2Fconsole.py")
        session = (await client.get("/console/api/session")).json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/static/console.js">' in page.text
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert unknown.status_code == 404

    people = {p["key"]: p for p in session["people"]}
    assert list(people) == ["resident", "worker", "worker2", "supervisor"]
    assert people["resident"]["roles"] == ["resident"] and people["resident"]["locale"] == "zh_CN"
    assert people["worker"]["area"]["name"] == "江苏路街道第1网格" and people["worker"]["on_duty"] is True
    assert people["worker2"]["area"]["name_en"] == "Jiangsu Road Grid 2" and people["worker2"]["locale"] == "en"
    assert people["supervisor"]["roles"] == ["supervisor"] and people["supervisor"]["area"]["code"] == "SH-CN-01"
    # The page's own words come in both languages.
    assert session["strings"]["zh_CN"]["ui"]["send"] == "发送"
    assert session["strings"]["en"]["ui"]["send"] == "Send"
    assert session["strings"]["zh_CN"]["status"]["closed"] == "已结案"

    with db.sessions() as s:
        stored = {p.telegram_user_id: p for p in s.exec(select(Person))}
        street = s.exec(select(Area).where(Area.code == "SH-CN-01")).one()
    worker = stored[PEOPLE["worker"].telegram_user_id]
    assert (worker.roles, worker.area_code, worker.department_code, worker.on_duty) == (
        ["worker"], "SH-CN-01-001", "greening_appearance", True)
    assert street.supervisor_chat_id == PEOPLE["supervisor"].telegram_user_id


async def test_text_goes_to_the_bot_and_its_reply_comes_back(sandbox: Running) -> None:
    resident = sandbox.persona_id("resident")
    async with sandbox.client() as client:
        sent = await client.post(f"/console/api/personas/{resident}/text", json={"text": "/help"},
                                 headers=CONSOLE_HEADERS)
        assert sent.status_code == 200
        chat = await wait_chat(sandbox, client, resident, lambda c: any(not m["mine"] for m in c["messages"]))
    update = next(u for u in sandbox.sandbox.emulator.updates if u["update_id"] == sent.json()["update_id"])
    assert update["message"]["from"]["id"] == resident and update["message"]["text"] == "/help"
    assert update["message"]["entities"][0]["type"] == "bot_command"
    mine, reply = chat["messages"][0], chat["messages"][1]
    assert mine["mine"] is True and mine["text"] == "/help"
    # The console shows the bot's reply exactly as the emulated Telegram holds it.
    [held] = sandbox.sandbox.emulator.sent(resident)[:1]
    assert reply["mine"] is False and reply["text"] == held["text"] and reply["entities"] == held.get("entities", [])


async def test_html_from_the_bot_arrives_as_text_and_entities(sandbox: Running) -> None:
    supervisor = sandbox.persona_id("supervisor")
    bot_says(sandbox, supervisor, "<b>Case</b> &lt;script&gt;alert(1)&lt;/script&gt; <a href=\"https://example.org\">x</a>")
    async with sandbox.client() as client:
        chat = await wait_chat(sandbox, client, supervisor, lambda c: c["messages"])
    [message] = chat["messages"]
    assert message["text"] == "Case <script>alert(1)</script> x"
    assert {"type": "bold", "offset": 0, "length": 4} in message["entities"]
    assert any(e["type"] == "text_link" and e["url"].startswith("https://example.org") for e in message["entities"])


async def test_pressing_an_inline_button_is_a_callback_query_from_that_persona(sandbox: Running) -> None:
    worker = sandbox.persona_id("worker")
    markup = {"inline_keyboard": [[{"text": "Accept", "callback_data": "demo:accept"},
                                   {"text": "Manual", "url": "https://example.org/manual"}]]}
    bot_says(sandbox, worker, "A work order", markup)
    async with sandbox.client() as client:
        chat = await wait_chat(sandbox, client, worker, lambda c: c["messages"])
        [order] = chat["messages"]
        assert order["inline_keyboard"] == [[{"text": "Accept", "callback_data": "demo:accept"},
                                             {"text": "Manual", "url": "https://example.org/manual"}]]
        pressed = await client.post(f"/console/api/personas/{worker}/press",
                                    json={"message_id": order["id"], "callback_data": "demo:accept"},
                                    headers=CONSOLE_HEADERS)
        forged = await client.post(f"/console/api/personas/{worker}/press",
                                   json={"message_id": order["id"], "callback_data": "demo:approve"},
                                   headers=CONSOLE_HEADERS)
    assert pressed.status_code == 200
    query = sandbox.sandbox.emulator.updates[-1]["callback_query"]
    assert (query["from"]["id"], query["data"], query["message"]["message_id"]) == (worker, "demo:accept", order["id"])
    assert forged.status_code == 409 and forged.json()["code"] == "button_gone"  # only buttons that exist


async def test_reply_keyboard_and_request_location_buttons_are_described(sandbox: Running) -> None:
    resident = sandbox.persona_id("resident")
    keyboard = {"keyboard": [[{"text": "Send my location", "request_location": True}], [{"text": "Cancel"}]],
                "one_time_keyboard": True, "input_field_placeholder": "Where is it?"}
    bot_says(sandbox, resident, "Where?", keyboard)
    async with sandbox.client() as client:
        chat = await wait_chat(sandbox, client, resident, lambda c: c["reply_keyboard"])
    assert chat["reply_keyboard"] == {
        "rows": [[{"text": "Send my location", "request_location": True, "request_contact": False}],
                 [{"text": "Cancel", "request_location": False, "request_contact": False}]],
        "one_time": True, "placeholder": "Where is it?"}


async def test_location_live_location_and_bad_coordinates(sandbox: Running) -> None:
    worker = sandbox.persona_id("worker")
    lat, lon = grid_point("SH-CN-01-001")
    async with sandbox.client() as client:
        plain = await client.post(f"/console/api/personas/{worker}/location",
                                  json={"latitude": lat, "longitude": lon}, headers=CONSOLE_HEADERS)
        plain_update = sandbox.sandbox.emulator.updates[-1]
        live = await client.post(f"/console/api/personas/{worker}/location",
                                 json={"latitude": lat, "longitude": lon, "live": True}, headers=CONSOLE_HEADERS)
        live_update = sandbox.sandbox.emulator.updates[-1]
        bad = await client.post(f"/console/api/personas/{worker}/location",
                                json={"latitude": 91, "longitude": lon}, headers=CONSOLE_HEADERS)
    assert plain.status_code == live.status_code == 200
    location = plain_update["message"]["location"]
    assert (location["latitude"], location["longitude"]) == (lat, lon) and "live_period" not in location
    assert location["horizontal_accuracy"] == 10.0
    assert live_update["message"]["location"]["live_period"] == LIVE_LOCATION_SECONDS
    assert bad.status_code == 422
    shared = [u for u in sandbox.sandbox.emulator.updates if "location" in u.get("message", {})]
    assert len(shared) == 2  # the refused one never reached the bot


async def test_photo_is_sent_like_a_telegram_app_sends_it(sandbox: Running) -> None:
    resident = sandbox.persona_id("resident")
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    source = io.BytesIO()
    Image.open(io.BytesIO(picture(size=(4000, 3000)))).save(source, format="JPEG", exif=exif.tobytes())
    async with sandbox.client() as client:
        sent = await client.post("/console/api/photo", data={"persona": str(resident), "caption": " rubbish "},
                                 files={"file": ("p.jpg", source.getvalue(), "image/jpeg")},
                                 headers=CONSOLE_HEADERS)
        update = sandbox.sandbox.emulator.updates[-1]
        not_picture = await client.post("/console/api/photo", data={"persona": str(resident)},
                                        files={"file": ("x.jpg", b"%PDF-1.4 not a picture", "image/jpeg")},
                                        headers=CONSOLE_HEADERS)
        too_big = await client.post("/console/api/photo", data={"persona": str(resident)},
                                    files={"file": ("big.jpg", b"\0" * (11 * 1024 * 1024), "image/jpeg")},
                                    headers=CONSOLE_HEADERS)
        chat = (await client.get(f"/console/api/personas/{resident}/chat")).json()
        [mine] = [m for m in chat["messages"] if "photo" in m]
        shown = await client.get(f"/console/api/files/{mine['photo']['file_id']}")
    assert sent.status_code == 200
    message = update["message"]
    assert message["from"]["id"] == resident and message["caption"] == "rubbish"
    largest = message["photo"][-1]
    assert (largest["width"], largest["height"]) == (2560, 1920)  # what a Telegram app uploads
    data = sandbox.sandbox.file(largest["file_id"])
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and not image.getexif()  # re-encoded without metadata
    assert not_picture.status_code == 422 and not_picture.json()["code"] == "not_a_picture"
    assert too_big.status_code == 413
    assert len([u for u in sandbox.sandbox.emulator.updates if "photo" in u.get("message", {})]) == 1
    assert mine["mine"] is True and mine["caption"] == "rubbish"
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"


async def test_unknown_persona_and_empty_text_are_refused(sandbox: Running) -> None:
    async with sandbox.client() as client:
        stranger = await client.post("/console/api/personas/424242/text", json={"text": "hi"},
                                     headers=CONSOLE_HEADERS)
        empty = await client.post(f"/console/api/personas/{sandbox.persona_id('resident')}/text",
                                  json={"text": "   "}, headers=CONSOLE_HEADERS)
    assert stranger.status_code == 404 and stranger.json()["code"] == "unknown_persona"
    assert empty.status_code == 422 and empty.json()["code"] == "empty"
    assert 424242 not in sandbox.sandbox.emulator.store.chats  # nobody was made up


async def test_a_new_resident_joins_the_console(sandbox: Running) -> None:
    async with sandbox.client() as client:
        added = await client.post("/console/api/personas", json={"name": "Ann", "locale": "en"},
                                  headers=CONSOLE_HEADERS)
        people = (await client.get("/console/api/session")).json()["people"]
        said = await client.post(f"/console/api/personas/{added.json()['id']}/text", json={"text": "/start"},
                                 headers=CONSOLE_HEADERS)
    assert added.status_code == 201 and added.json()["id"] == EXTRA_RESIDENT_BASE + 1
    ann = people[-1]
    assert (ann["name"], ann["roles"], ann["locale"]) == ("Ann", ["resident"], "en")
    assert said.status_code == 200
    assert sandbox.sandbox.emulator.updates[-1]["message"]["from"]["language_code"] == "en"


# ---------------------------------------------------------------------------- map and cases


async def test_map_is_the_district_around_the_demo_street(sandbox: Running) -> None:
    async with sandbox.client() as client:
        collection = (await client.get("/console/api/map")).json()
        elsewhere = (await client.get("/console/api/map", params={"area": "SH-XX-99"})).json()
    assert collection["focus"] == "SH-CN-01"
    codes = {f["properties"]["code"]: f for f in collection["features"]}
    assert "SH-CN" in codes and {f"SH-CN-01-00{n}" for n in range(1, 10)} <= set(codes)
    assert all(code.startswith("SH-CN") for code in codes)  # nothing of other districts
    grid = codes["SH-CN-01-001"]
    assert grid["geometry"]["type"] == "Polygon" and grid["properties"]["name_en"] == "Jiangsu Road Grid 1"
    assert elsewhere == {"type": "FeatureCollection", "features": [], "focus": None}


async def test_cases_and_their_audit_trail_follow_the_store(sandbox: Running, db) -> None:
    ctx = sandbox.app.ctx
    with db.sessions() as s:
        resident_row = s.exec(select(Person).where(
            Person.telegram_user_id == sandbox.persona_id("resident"))).one()
    lat, lon = grid_point("SH-CN-01-003")
    async with sandbox.client() as client, client.stream("GET", "/console/api/events") as response:
        stream = EventStream(response)
        _, first = await stream.until(lambda name, data: name == "cases")
        case = report_case(ctx, actor=Actor(Role.RESIDENT, resident_row.id), source=CaseSource.RESIDENT,
                           category_code="exposed_garbage", lat=lat, lon=lon, description="bags by the gate")
        _, moved = await stream.until(
            lambda name, data: name == "cases" and data["latest_event"] != first["latest_event"])
        listed = (await client.get("/console/api/cases")).json()["cases"]
        timeline = (await client.get(f"/console/api/cases/{case.number}")).json()
        missing = await client.get("/console/api/cases/SH-19990101-000001")
    with db.sessions() as s:
        rows = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)).all()
    assert moved["latest_event"] >= rows[-1].id
    assert listed[0]["number"] == case.number and listed[0]["category_name"] == "暴露垃圾"
    assert listed[0]["grid"] == "SH-CN-01-003"
    assert [(e["action"], e["to_status"]) for e in timeline["events"]] == [(r.action, r.to_status) for r in rows]
    assert timeline["events"][0]["action"] == "report" and timeline["events"][0]["actor"] == "李华"
    assert timeline["events"][1]["action"] == "register" and timeline["events"][1]["actor_role"] == "system"
    assert missing.status_code == 404


# ---------------------------------------------------------------------------- live stream


async def test_stream_sends_snapshots_then_each_change(sandbox: Running) -> None:
    worker2 = sandbox.persona_id("worker2")
    async with sandbox.client() as client, client.stream("GET", "/console/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        name, people = await stream.next()
        assert name == "people" and len(people) == 4
        snapshots = {}
        while len(snapshots) < 4:
            name, data = await stream.next()
            assert name == "chat"
            snapshots[data["persona"]] = data["chat"]
        assert snapshots[worker2]["messages"] == []
        bot_says(sandbox, worker2, "New work order")
        _, update = await stream.until(lambda name, data: name == "chat" and data["persona"] == worker2)
    assert [m["text"] for m in update["chat"]["messages"]] == ["New work order"]


async def test_stream_tells_when_a_person_changes(sandbox: Running, db) -> None:
    async with sandbox.client() as client, client.stream("GET", "/console/api/events") as response:
        stream = EventStream(response)
        await stream.next()
        with transaction(db.sessions) as s:
            worker = s.exec(select(Person).where(
                Person.telegram_user_id == sandbox.persona_id("worker2"))).one()
            worker.on_duty, worker.locale = False, "zh_CN"
        _, people = await stream.until(lambda name, data: name == "people")
    changed = next(p for p in people if p["key"] == "worker2")
    assert (changed["on_duty"], changed["locale"]) == (False, "zh_CN")


async def test_open_streams_do_not_hold_up_a_shutdown(db, clock, tmp_path) -> None:
    seed_store(db.sessions, clock)
    running = await serve_sandbox(build(sandbox_settings(db.url, tmp_path), clock=clock))
    async with running.client() as client, client.stream("GET", "/console/api/events") as response:
        stream = EventStream(response)
        await stream.next()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await stop_sandbox(running)
        assert loop.time() - started < 10


# ---------------------------------------------------------------------------- who may call


async def test_requests_for_another_host_or_without_the_header_are_refused(sandbox: Running) -> None:
    resident = sandbox.persona_id("resident")
    async with sandbox.client() as client:
        rebound = await client.get("/console/api/session", headers={"Host": "attacker.example:8000"})
        localhost = await client.get("/console/api/session",
                                     headers={"Host": f"localhost:{sandbox.app.settings.api_port}"})
        no_header = await client.post(f"/console/api/personas/{resident}/text", json={"text": "/help"})
        form_post = await client.post(f"/console/api/personas/{resident}/text", content="text=hi",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert rebound.status_code == 403 and rebound.json()["code"] == "host"
    assert localhost.status_code == 200
    assert no_header.status_code == 403 and form_post.status_code == 403
    assert not any(u.get("message", {}).get("from", {}).get("id") == resident
                   for u in sandbox.sandbox.emulator.updates)


async def test_health_describes_the_sandbox(sandbox: Running) -> None:
    async with sandbox.client() as client:
        health = (await client.get("/health")).json()
        openapi = (await client.get("/openapi.json")).json()
    assert health["status"] == "ok"
    assert health["bot"]["enabled"] is False and "ONEGRID_BOT_TOKEN" in health["bot"]["hint"]
    assert health["bot"]["sandbox"]["running"] is True and health["bot"]["sandbox"]["personas"] == 4
    assert health["bot"]["sandbox"]["emulator"].startswith("http://127.0.0.1:")
    assert not any(path.startswith("/console") for path in openapi["paths"])  # not part of the public API


async def test_seeding_twice_creates_nobody_twice_and_keeps_changes(sandbox: Running, db) -> None:
    from bot.sandbox import seed_demo_people

    with transaction(db.sessions) as s:
        worker = s.exec(select(Person).where(Person.telegram_user_id == sandbox.persona_id("worker"))).one()
        worker.on_duty = False
    assert seed_demo_people(sandbox.app.ctx) == []
    with db.sessions() as s:
        assert s.exec(select(func.count()).select_from(Person)).one() == 4
        worker = s.exec(select(Person).where(Person.telegram_user_id == sandbox.persona_id("worker"))).one()
    assert worker.on_duty is False


async def test_a_photo_the_bot_sends_is_shown(sandbox: Running, tmp_path) -> None:
    supervisor = sandbox.persona_id("supervisor")
    ctx = sandbox.app.ctx
    path = sandbox.app.settings.data_dir / "proof.jpg"
    path.write_bytes(picture(fmt="JPEG"))
    with transaction(ctx.sessions) as session:
        enqueue(session, chat_id=supervisor, method="sendPhoto",
                payload={"photo_path": "proof.jpg", "caption": "<i>proof</i>", "parse_mode": "HTML"},
                now=ctx.clock.now())
    ctx.on_notifications()
    async with sandbox.client() as client:
        chat = await wait_chat(sandbox, client, supervisor, lambda c: c["messages"])
        [message] = chat["messages"]
        image = await client.get(f"/console/api/files/{message['photo']['file_id']}")
    assert message["caption"] == "proof" and message["caption_entities"][0]["type"] == "italic"
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
