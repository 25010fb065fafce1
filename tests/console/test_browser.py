"""The whole loop played in the console with a real browser (Playwright driving Debian's Chromium).

A resident reports with a photo and a click on the map, the grid worker accepts and completes with
a photo and a live location, the supervisor approves, the resident rates. Every step is a click or
an upload in the page; every check is what a pane (or the timeline) shows. Screenshots of each
step go to the test's output folder; with ONEGRID_UPDATE_README_SHOT=1 the last one also replaces
docs/console.png for the README.

The app runs with the system clock, as `make run` does: the bot paces follow-up messages a second
apart (Telegram's limit per chat), which a frozen test clock would hold back forever.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onegrid.app import build
from tests.console.conftest import (
    ROOT,
    Running,
    grid_point,
    picture,
    sandbox_settings,
    seed_store,
    serve_sandbox,
    stop_sandbox,
)

CHROMIUM = Path("/usr/bin/chromium")
README_SHOT = ROOT / "docs" / "console.png"
STEP_TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.parametrize("db", ["sqlite"], indirect=True),  # the `make run` store; the API tests cover both
]
async_playwright = pytest.importorskip("playwright.async_api").async_playwright


@pytest.fixture
async def live_sandbox(db, tmp_path: Path) -> AsyncIterator[Running]:
    from onegrid.clock import SystemClock

    clock = SystemClock()
    seed_store(db.sessions, clock)
    running = await serve_sandbox(build(sandbox_settings(db.url, tmp_path / "var"), clock=clock))
    yield running
    await stop_sandbox(running)


@pytest.fixture
async def page(live_sandbox: Running) -> AsyncIterator:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-GB",
                                            timezone_id="Asia/Shanghai")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(STEP_TIMEOUT_MS)
        await page.goto(f"{live_sandbox.base_url}/console")
        await page.wait_for_selector("body[data-ready=true]")
        yield page
        await browser.close()
        assert errors == [], f"the page raised: {errors}"


def output_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


async def click_on_map(page, lat: float, lon: float) -> None:  # noqa: ANN001
    """Click the open map picker at a longitude/latitude, as a person clicks a place they see."""
    point = await page.evaluate(f"oneGridConsole.pickerPoint({lon}, {lat})")
    await page.mouse.click(point["x"], point["y"])


async def test_the_whole_loop_in_the_browser(page, live_sandbox: Running, tmp_path: Path) -> None:  # noqa: ANN001
    shots = output_dir(tmp_path)
    photo = tmp_path / "garbage.png"
    photo.write_bytes(picture((120, 100, 70), label="garbage"))
    proof = tmp_path / "clean.png"
    proof.write_bytes(picture((90, 150, 90), label="clean"))
    resident = page.locator(".pane[data-key=resident]")
    worker = page.locator(".pane[data-key=worker]")
    supervisor = page.locator(".pane[data-key=supervisor]")

    # Three personas side by side: the second grid's worker is switched off in the header.
    await page.locator(".viewer-locale").select_option("en")
    await page.locator(".chip[data-key=worker2] input").uncheck()
    assert await page.locator(".pane").count() == 3
    head = resident.locator(".pane-head")
    assert [await head.locator(f".{part}").inner_text() for part in ("name", "role", "locale")] == [
        "李华", "居民", "中文"]  # the pane speaks its persona's language, whatever the viewer's
    assert "江苏路街道第1网格" in await worker.locator(".area").inner_text()
    assert await worker.locator(".duty").inner_text() == "在岗"
    assert await supervisor.locator(".area").inner_text() == "Jiangsu Road"
    await page.screenshot(path=shots / "0-start.png")

    # -- the resident: consent, /report, category, photo with a caption, a click on the map, submit
    await resident.locator(".start").click()
    await resident.locator('[data-callback^="cs:yes"]').click()
    await resident.locator("textarea").fill("/report")
    await resident.locator("textarea").press("Enter")
    await resident.locator('[data-callback*=":kind:environment"]').click()
    await resident.locator('[data-callback*=":cat:exposed_garbage"]').click()
    await resident.locator(".photo-input").set_input_files(photo)
    assert not await resident.locator(".attachment").is_hidden()
    await resident.locator("textarea").fill("小区门口垃圾堆积")
    await resident.locator(".send").click()
    await resident.locator(".msg.mine img.photo").wait_for()
    assert await resident.locator(".msg.mine").last.locator(".text").inner_text() == "小区门口垃圾堆积"

    await resident.locator(".reply-keyboard button.requests-location").click()
    picker = page.locator("dialog.picker")
    await picker.wait_for()
    assert await picker.locator("h2").inner_text() == "发送位置"  # the resident's language
    lat, lon = grid_point("SH-CN-01-001")
    await click_on_map(page, lat, lon)
    assert (await picker.locator(".picked").inner_text()).startswith("📍 江苏路街道第1网格 · ")
    await page.screenshot(path=shots / "1-map.png")
    await picker.locator("button[value=send]").click()
    shared = resident.locator(".msg.mine .location")
    await shared.wait_for()
    assert f"{lat:.5f}, {lon:.5f}" in await shared.locator(".coords").inner_text()

    await resident.locator('[data-callback*=":submit"]').click()
    registered = resident.locator(".msg.bot", has_text=re.compile(r"SH-\d{8}-\d{6}")).first
    await registered.wait_for()
    number = re.search(r"SH-\d{8}-\d{6}", await registered.inner_text()).group()
    await page.screenshot(path=shots / "2-reported.png")

    # -- the worker of grid 1 gets the work order, accepts, completes with a photo and a live location
    order = worker.locator(".msg.bot", has_text=number).filter(has=page.locator('[data-callback^="wo:a:"]'))
    await order.wait_for()
    assert "小区门口垃圾堆积" in await order.inner_text()
    await worker.locator(".msg.bot img.photo").first.wait_for()  # the resident's photo came along
    await order.locator('[data-callback^="wo:a:"]').click()
    await expect_timeline(page, "Accepted")
    await resident.locator(".msg.bot", has_text="🔧").wait_for()  # the resident is told

    await worker.locator('[data-callback^="wt:c:"]').click()
    await worker.locator(".photo-input").set_input_files(proof)
    await worker.locator(".send").click()  # the photo's receipt brings the location button
    await worker.locator(".reply-keyboard button.requests-location").click()
    await picker.wait_for()
    await picker.locator("input[name=live]").check()
    await click_on_map(page, lat + 0.0001, lon + 0.0001)  # about 15 m from the reported point
    await picker.locator("button[value=send]").click()
    live = worker.locator(".msg.mine .location").last
    await live.wait_for()
    await expect_timeline(page, "Completed")
    await page.screenshot(path=shots / "3-completed.png")

    # -- the street's supervisor approves
    card = supervisor.locator(".msg.bot", has_text=number).filter(has=page.locator('[data-callback^="sv:a:"]'))
    await card.wait_for()
    await supervisor.locator(".msg.bot img.photo").first.wait_for()  # the proof photo
    await card.locator('[data-callback^="sv:a:"]').click()
    await expect_timeline(page, "Approved")
    await worker.locator(".msg.bot", has_text=number).last.wait_for()

    # -- the resident is told, says it is fixed and rates it
    fixed = resident.locator('[data-callback^="fb:"][data-callback*=":y:"]')
    await fixed.click()
    await resident.locator('[data-callback^="fb:"][data-callback$=":r:5"]').click()
    await resident.locator(".msg.bot", has_text="⭐⭐⭐⭐⭐").wait_for()

    # The timeline shows the case's audit trail in order, closed.
    await page.locator(".case-list button.selected", has_text=number).wait_for()
    actions = await page.locator(".case-detail .events li strong").all_inner_texts()
    assert actions == ["Reported", "Registered", "Dispatched", "Accepted", "Completed", "Approved"]
    assert "closed" in await page.locator(".case-detail .case-head").inner_text()
    assert await resident.locator(".msg.bot", has_text=f"✅ 案件 {number}").count() == 1  # in Chinese

    await page.screenshot(path=shots / "4-rated.png")
    if os.environ.get("ONEGRID_UPDATE_README_SHOT") == "1":  # a test run never rewrites tracked files
        shutil.copyfile(shots / "4-rated.png", README_SHOT)
    (shots / "pane-texts.json").write_text(json.dumps({
        key: await page.locator(f".pane[data-key={key}] .messages").inner_text()
        for key in ("resident", "worker", "supervisor")}, ensure_ascii=False, indent=1), encoding="utf-8")
    assert sorted(os.listdir(shots))[:5] == ["0-start.png", "1-map.png", "2-reported.png", "3-completed.png",
                                              "4-rated.png"]


async def expect_timeline(page, action: str) -> None:  # noqa: ANN001
    """Wait until the timeline of the selected case shows `action` as its latest event."""
    await page.locator(".case-detail .events li:last-child strong", has_text=action).wait_for()


async def test_bot_text_is_shown_not_run(page, live_sandbox: Running) -> None:  # noqa: ANN001
    from services.db import transaction
    from services.notify import enqueue_text

    ctx = live_sandbox.app.ctx
    supervisor_id = live_sandbox.persona_id("supervisor")
    with transaction(ctx.sessions) as session:
        enqueue_text(session, chat_id=supervisor_id, now=ctx.clock.now(),
                     text="<b>Bold</b> &lt;img src=x onerror=alert(1)&gt; <a href=\"javascript:alert(2)\">link</a> "
                          "<code>SH-20261121-000001</code>")
    ctx.on_notifications()
    bubble = page.locator(".pane[data-key=supervisor] .msg.bot").last
    await bubble.wait_for()
    text = bubble.locator(".text")
    assert await text.locator("b").inner_text() == "Bold"
    assert "<img src=x onerror=alert(1)>" in await text.inner_text()  # shown as text
    assert await bubble.locator("img").count() == 0  # ...not made into an element
    assert await text.locator("a[href^=javascript]").count() == 0  # a javascript: link is not a link
    assert await text.locator("code").inner_text() == "SH-20261121-000001"


async def test_a_tap_and_the_text_typed_right_after_it_reach_the_bot_in_that_order(  # noqa: ANN001
        page, live_sandbox: Running) -> None:
    """A Telegram app sends a user's actions in order; the console does too, however slow a request is.

    The "I agree" tap is held up on its way to the server; the /report typed right after it must still
    arrive second, or the bot would ask for consent again instead of showing the report's categories.
    """
    import asyncio

    async def slow(route) -> None:  # noqa: ANN001
        await asyncio.sleep(1.0)
        await route.continue_()

    resident = page.locator(".pane[data-key=resident]")
    await resident.locator(".start").click()
    agree = resident.locator('[data-callback^="cs:yes"]')
    await agree.wait_for()
    await page.route("**/api/personas/*/press", slow)
    await agree.click()
    await resident.locator("textarea").fill("/report")
    await resident.locator("textarea").press("Enter")
    await resident.locator('[data-callback*=":kind:environment"]').wait_for()
    assert await resident.locator('[data-callback^="cs:yes"]').count() == 0  # consent was not asked again
