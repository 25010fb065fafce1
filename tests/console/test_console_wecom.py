"""The sandbox with ONEGRID_SANDBOX_WECOM=on: a resident on Telegram and the demo worker on WeCom / 政务微信
handle one case, each through their console pane (the console's HTTP API, as the page uses it).

The worker's pane reads what the WeCom emulator received from OneGrid's message/send, and every action in
it is an encrypted callback posted by the emulator's member side to OneGrid's /wecom/callback.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case
from onegrid.app import build
from onegrid.clock import FakeClock
from onegrid.i18n import gettext_for
from onegrid.sandbox_wecom import WECOM_PEOPLE
from tests.console.conftest import (
    CONSOLE_HEADERS,
    EventStream,
    Running,
    grid_point,
    picture,
    sandbox_settings,
    seed_store,
    serve_sandbox,
    stop_sandbox,
)

ZH = gettext_for("zh_CN")
CASE_NUMBER = re.compile(r"SH-\d{8}-\d{6}")


@pytest.fixture
async def wecom_sandbox(db, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Running]:
    seed_store(db.sessions, clock)
    app = build(sandbox_settings(db.url, tmp_path, sandbox_wecom="on"), clock=clock)
    running = await serve_sandbox(app)
    yield running
    await stop_sandbox(running)


async def chat_until(client: httpx.AsyncClient, persona: int, predicate: Callable[[dict], Any],
                     timeout: float = 15.0) -> dict:
    """The persona's chat as the console serves it, once `predicate(chat)` holds (replies come asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get(f"/console/api/personas/{persona}/chat")
        assert response.status_code == 200, response.text
        chat = response.json()
        if predicate(chat):
            return chat
        if loop.time() > deadline:
            raise AssertionError(f"not seen in time; the chat is {chat['messages'][-3:]}")
        await asyncio.sleep(0.05)  # polling the console like the page's fallback would


def buttons(chat: dict, part: str) -> list[tuple[int, str, str]]:
    """(message id, button text, callback data) of every button whose data contains `part`, oldest first."""
    return [(m["id"], b["text"], b["callback_data"]) for m in chat["messages"] for row in m.get("inline_keyboard", [])
            for b in row if part in b.get("callback_data", "")]


async def press(client: httpx.AsyncClient, persona: int, part: str) -> tuple[str, dict]:
    """Press the newest button whose data contains `part` (waiting for it); returns (its text, the chat before)."""
    chat = await chat_until(client, persona, lambda c: buttons(c, part))
    message_id, text, data = buttons(chat, part)[-1]
    answer = await client.post(f"/console/api/personas/{persona}/press", json={"message_id": message_id,
                               "callback_data": data}, headers=CONSOLE_HEADERS)
    assert answer.status_code == 200, answer.text
    return text, chat


async def post(client: httpx.AsyncClient, persona: int, what: str, body: dict) -> None:
    answer = await client.post(f"/console/api/personas/{persona}/{what}", json=body, headers=CONSOLE_HEADERS)
    assert answer.status_code == 200, answer.text


async def send_photo(client: httpx.AsyncClient, persona: int, data: bytes, caption: str = "") -> None:
    answer = await client.post("/console/api/photo", data={"persona": str(persona), "caption": caption},
                               files={"file": ("p.png", data, "image/png")}, headers=CONSOLE_HEADERS)
    assert answer.status_code == 200, answer.text


def newer(chat: dict) -> Callable[[dict], bool]:
    """A predicate: the app or bot sent something after `chat`."""
    count = sum(1 for m in chat["messages"] if not m["mine"])
    return lambda c: sum(1 for m in c["messages"] if not m["mine"]) > count


async def report_on_telegram(client: httpx.AsyncClient, resident: int, lat: float, lon: float) -> str:
    """The resident's report, as in the browser test: consent, /report, category, photo, location, submit."""
    await post(client, resident, "text", {"text": "/start"})
    await press(client, resident, "cs:yes")
    await post(client, resident, "text", {"text": "/report"})
    await press(client, resident, ":kind:environment")
    await press(client, resident, ":cat:exposed_garbage")
    await send_photo(client, resident, picture((120, 100, 70), label="garbage"), "小区门口垃圾堆积")
    await chat_until(client, resident, lambda c: any(b["request_location"] for row in
                                                     (c["reply_keyboard"] or {}).get("rows", []) for b in row))
    await post(client, resident, "location", {"latitude": lat, "longitude": lon})
    await press(client, resident, ":submit")
    chat = await chat_until(client, resident, lambda c: any(CASE_NUMBER.search(m.get("text", ""))
                                                            for m in c["messages"] if not m["mine"]))
    return next(CASE_NUMBER.search(m["text"]).group() for m in chat["messages"]
                if not m["mine"] and CASE_NUMBER.search(m.get("text", "")))


async def test_a_resident_on_telegram_and_a_worker_on_wecom_handle_one_case(wecom_sandbox: Running, db) -> None:
    sandbox = wecom_sandbox.sandbox
    resident, worker = wecom_sandbox.persona_id("resident"), wecom_sandbox.persona_id("worker")
    supervisor = wecom_sandbox.persona_id("supervisor")
    lat, lon = grid_point("SH-CN-01-001")
    async with wecom_sandbox.client() as client:
        people = {p["key"]: p for p in (await client.get("/console/api/session")).json()["people"]}
        assert {k: p["channel"] for k, p in people.items()} == {
            "resident": "telegram", "worker": "wecom", "worker2": "telegram", "supervisor": "telegram"}
        assert (await client.get("/console/api/session")).json()["strings"]["zh_CN"]["ui"]["channel_wecom"] == "政务微信 / WeCom"

        number = await report_on_telegram(client, resident, lat, lon)

        # The worker's pane is their WeCom conversation: the order is a template card with its buttons.
        chat = await chat_until(client, worker, lambda c: buttons(c, "wo:a:"))
        assert chat["channel"] == "wecom"
        order = next(m for m in chat["messages"] if buttons({"messages": [m]}, "wo:a:"))
        assert order["text"].startswith(ZH("🆕 Work order {number}").format(number=number))
        assert [row[0]["text"] for row in order["inline_keyboard"]] == [ZH("✅ Accept"), ZH("↩️ Return to dispatcher")]
        assert any("photo" in m for m in chat["messages"])  # the resident's photo came along, as a WeCom image
        photo = next(m["photo"]["file_id"] for m in chat["messages"] if "photo" in m)
        assert (await client.get(f"/console/api/files/{photo}")).headers["content-type"] == "image/jpeg"

        pressed, _ = await press(client, worker, "wo:a:")
        assert pressed == ZH("✅ Accept")
        await press(client, worker, "wt:c:")  # 📸 Complete
        before = await chat_until(client, worker, lambda c: buttons(c, "wp:x:"))
        await send_photo(client, worker, picture((90, 150, 90), label="clean"))
        await chat_until(client, worker, newer(before))
        await press(client, worker, "wp:d:")  # ➡️ Done with photos
        before = await chat_until(client, worker, lambda c: c["messages"][-1].get("text") == ZH(
            "Now send your location on site."))
        await post(client, worker, "location", {"latitude": lat + 0.0001, "longitude": lon + 0.0001})
        chat = await chat_until(client, worker, newer(before))

    receipt = chat["messages"][-1]["text"]
    assert receipt.startswith(ZH("✅ Proof submitted for case {number}: {distance} m from the case point "
                                 "({kind}).").split("{distance}")[0].format(number=number))
    mine = [m for m in chat["messages"] if m["mine"]]
    assert any("photo" in m for m in mine) and any("location" in m for m in mine)
    with db.sessions() as s:
        case = s.exec(select(Case).where(Case.number == number)).one()
        assert case.status == Status.AWAITING_VERIFICATION
    # Every WeCom message went through message/send of the emulator, none through Telegram to the worker.
    panes = sandbox.pane_channel
    assert panes.emulator.inbox(WECOM_PEOPLE["worker"]) and not sandbox.emulator.sent(worker)
    async with wecom_sandbox.client() as client:  # the street's supervisor, on Telegram, is asked to verify
        await chat_until(client, supervisor, lambda c: buttons(c, "sv:a:"))


async def test_a_refused_press_on_wecom_says_why(wecom_sandbox: Running) -> None:
    worker = wecom_sandbox.persona_id("worker")
    async with wecom_sandbox.client() as client:
        gone = await client.post(f"/console/api/personas/{worker}/press", json={"message_id": 99,
                                 "callback_data": "wo:a:1"}, headers=CONSOLE_HEADERS)
        contact = await client.post(f"/console/api/personas/{worker}/contact", headers=CONSOLE_HEADERS)
        sent = await client.post(f"/console/api/personas/{worker}/text", json={"text": "你好"},
                                 headers=CONSOLE_HEADERS)
        chat = await chat_until(client, worker, lambda c: c["messages"])
    assert gone.status_code == 422 and gone.json()["code"] == "message_gone"
    assert contact.status_code == 422 and contact.json()["code"] == "not_on_this_channel"
    assert sent.status_code == 200 and chat["messages"][0]["mine"] and chat["messages"][0]["text"] == "你好"


async def test_the_stream_follows_the_wecom_pane(wecom_sandbox: Running) -> None:
    worker = wecom_sandbox.persona_id("worker")
    async with wecom_sandbox.client() as client, client.stream("GET", "/console/api/events") as response:
        events = EventStream(response)
        _, snapshot = await events.until(lambda name, data: name == "chat" and data["persona"] == worker)
        assert snapshot["chat"]["channel"] == "wecom" and snapshot["chat"]["messages"] == []
        await post(client, worker, "text", {"text": "在岗"})
        _, changed = await events.until(lambda name, data: name == "chat" and data["persona"] == worker
                                        and data["chat"]["messages"])
    assert changed["chat"]["messages"][0]["text"] == "在岗" and changed["chat"]["messages"][0]["mine"]


async def test_without_wecom_the_demo_worker_is_on_telegram_again(db, clock: FakeClock, tmp_path: Path) -> None:
    seed_store(db.sessions, clock)
    channels = []
    for run, wecom in (("first", "on"), ("again", "off")):
        running = await serve_sandbox(build(sandbox_settings(db.url, tmp_path / run, sandbox_wecom=wecom),
                                            clock=clock))
        try:
            async with running.client() as client:
                people = {p["key"]: p for p in (await client.get("/console/api/session")).json()["people"]}
                chat = (await client.get(f"/console/api/personas/{running.persona_id('worker')}/chat")).json()
        finally:
            await stop_sandbox(running)
        channels.append((people["worker"]["channel"], chat["channel"], running.app.wecom is not None))
    assert channels == [("wecom", "wecom", True), ("telegram", "telegram", False)]


async def test_the_wecom_pane_offers_the_apps_menu_and_a_menu_item_is_a_menu_click(wecom_sandbox: Running,
                                                                                   db) -> None:
    """The pane lists the app's menu (duty, tasks, patrol) where a Telegram pane lists commands; choosing
    /duty is the menu click WeCom sends, not a text: the demo worker goes off duty."""
    from models.tables import Person  # noqa: PLC0415

    worker = wecom_sandbox.persona_id("worker")
    async with wecom_sandbox.client() as client:
        chat = await chat_until(client, worker, lambda c: True)
        assert [c["command"] for c in chat["commands"]] == ["tasks", "patrol", "duty"]
        assert chat["commands"][1]["description"] == ZH("report a problem you found on patrol")
        await post(client, worker, "text", {"text": "/duty"})
        answer = await chat_until(client, worker, lambda c: c["messages"])
    assert not any(m["mine"] for m in answer["messages"])  # a click shows no message of the member's
    with db.sessions() as s:
        assert s.exec(select(Person).where(Person.wecom_userid == WECOM_PEOPLE["worker"])).one().on_duty is False
