"""The worker's WeCom / 政务微信 pane in a real browser (ONEGRID_SANDBOX_WECOM=on), beside the resident on Telegram.

The resident's report is made through the console's HTTP API (tests/console/test_console_wecom.py plays
it); the worker then does everything in the page: presses the order card's Accept, Complete, attaches
a photo, presses Done with photos and shares a location picked on the map. Runs with the system clock,
as `make run` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case
from onegrid.app import build
from onegrid.i18n import gettext_for
from tests.console.conftest import Running, grid_point, picture, sandbox_settings, seed_store, serve_sandbox, stop_sandbox
from tests.console.test_console_wecom import report_on_telegram

CHROMIUM = Path("/usr/bin/chromium")
STEP_TIMEOUT_MS = 20_000
ZH = gettext_for("zh_CN")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.parametrize("db", ["sqlite"], indirect=True),
]
async_playwright = pytest.importorskip("playwright.async_api").async_playwright


@pytest.fixture
async def live_wecom_sandbox(db, tmp_path: Path) -> AsyncIterator[Running]:
    from onegrid.clock import SystemClock

    clock = SystemClock()
    seed_store(db.sessions, clock)
    running = await serve_sandbox(build(sandbox_settings(db.url, tmp_path / "var", sandbox_wecom="on"), clock=clock))
    yield running
    await stop_sandbox(running)


async def test_the_worker_handles_the_order_in_the_wecom_pane(live_wecom_sandbox: Running, db, tmp_path: Path) -> None:
    running = live_wecom_sandbox
    proof = tmp_path / "clean.png"
    proof.write_bytes(picture((90, 150, 90), label="clean"))
    lat, lon = grid_point("SH-CN-01-001")
    async with running.client() as client:
        number = await report_on_telegram(client, running.persona_id("resident"), lat, lon)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = await (await browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-GB",
                                                timezone_id="Asia/Shanghai")).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(STEP_TIMEOUT_MS)
        await page.goto(f"{running.base_url}/console")
        await page.wait_for_selector("body[data-ready=true]")

        worker = page.locator(".pane[data-key=worker]")
        assert await worker.locator(".pane-head .channel").inner_text() == "政务微信 / WeCom"
        assert await page.locator(".pane[data-key=resident] .pane-head .channel").is_hidden()
        order = worker.locator(".msg.bot", has_text=number).filter(has=page.locator('[data-callback^="wo:a:"]'))
        await order.wait_for()
        await order.locator('[data-callback^="wo:a:"]').click()
        await worker.locator('[data-callback^="wt:c:"]').last.click()
        await worker.locator('[data-callback^="wp:x:"]').last.wait_for()  # the card asking for photos
        await worker.locator(".photo-input").set_input_files(proof)
        await worker.locator(".send").click()
        await worker.locator(".msg.mine img.photo").wait_for()
        await worker.locator('[data-callback^="wp:d:"]').last.click()
        await worker.locator(".msg.bot", has_text=ZH("Now send your location on site.")).wait_for()
        await worker.locator(".attach-location").click()
        picker = page.locator("dialog.picker")
        await picker.wait_for()
        assert await picker.locator("label.live").is_hidden()  # WeCom shares no live location
        point = await page.evaluate(f"oneGridConsole.pickerPoint({lon + 0.0001}, {lat + 0.0001})")
        await page.mouse.click(point["x"], point["y"])
        await picker.locator("button[value=send]").click()
        await worker.locator(".msg.mine .location").wait_for()
        receipt = ZH("✅ Proof submitted for case {number}: {distance} m from the case point ({kind}).")
        await worker.locator(".msg.bot", has_text=receipt.split("{distance}")[0].format(number=number)).wait_for()
        await page.screenshot(path=tmp_path / "wecom-pane.png")
        await browser.close()
    assert errors == [], f"the page raised: {errors}"
    with db.sessions() as s:
        assert s.exec(select(Case).where(Case.number == number)).one().status == Status.AWAITING_VERIFICATION
