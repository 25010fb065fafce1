"""The pictures of the role guides (docs/guide-*.md), taken from the sandbox console by a real browser.

The loop of the README (a resident reports, the grid worker accepts and completes with a photo and a
live location, the supervisor approves, the resident rates) is played once per language, with every
demo person speaking that language. At each step the acting person's pane is photographed, cropped to
that pane, and every picture is checked to exist and be a sensible size. With ONEGRID_GUIDE_SHOTS=1
(`make guide-shots`) the pictures replace docs/img/<lang>/; a plain test run writes only to its own
temporary folder, so the tracked images change only when asked.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from bot.sandbox import DEMO_PEOPLE, seed_demo_people
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
DOCS_IMG = ROOT / "docs" / "img"
STEP_TIMEOUT_MS = 20_000
# Every picture the guides show, per language (docs/img/<lang>/<name>.png).
SHOTS = ("resident-1-category", "resident-2-location", "resident-3-registered", "worker-1-order",
         "worker-2-accepted", "worker-3-completed", "supervisor-1-proof", "supervisor-2-approved",
         "resident-4-feedback", "resident-5-my", "worker-4-duty", "supervisor-3-stats", "worker-5-extend",
         "supervisor-4-extension", "resident-6-delete")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make chromium`)"),
    pytest.mark.parametrize("db", ["sqlite"], indirect=True),
]
async_playwright = pytest.importorskip("playwright.async_api").async_playwright


@pytest.fixture(params=["zh_CN", "en"])
def lang(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def live_sandbox(db, tmp_path: Path, lang: str) -> AsyncIterator[Running]:
    from onegrid.clock import SystemClock

    clock = SystemClock()
    seed_store(db.sessions, clock)
    # The demo people, all speaking `lang` (as if each had chosen it with /lang); the sandbox keeps them.
    seed_demo_people(SimpleNamespace(sessions=db.sessions, clock=clock),
                     tuple(replace(p, locale=lang) for p in DEMO_PEOPLE))
    running = await serve_sandbox(build(sandbox_settings(db.url, tmp_path / "var"), clock=clock))
    yield running
    await stop_sandbox(running)


@pytest.fixture
async def page(live_sandbox: Running, lang: str) -> AsyncIterator:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1200, "height": 760}, locale="en-GB",
                                            timezone_id="Asia/Shanghai")
        page = await context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        await page.goto(f"{live_sandbox.base_url}/console")
        await page.wait_for_selector("body[data-ready=true]")
        await page.locator(".viewer-locale").select_option(lang)
        await page.locator(".chip[data-key=worker2] input").uncheck()
        await page.add_style_tag(content="header.top { display: none !important; }")  # the guides show chats only
        yield page
        await browser.close()


async def save(element, folder: Path, name: str) -> None:  # noqa: ANN001
    """The element as a small PNG (64 colours are plenty for a chat pane), the page scrolled to its top first."""
    await element.page.evaluate("window.scrollTo(0, 0)")
    shot = await element.screenshot()
    image = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    image.save(folder / f"{name}.png", optimize=True)


async def click_on_map(page, lat: float, lon: float) -> None:  # noqa: ANN001
    point = await page.evaluate(f"oneGridConsole.pickerPoint({lon}, {lat})")
    await page.mouse.click(point["x"], point["y"])


async def test_guide_pictures(page, live_sandbox: Running, tmp_path: Path, lang: str) -> None:  # noqa: ANN001
    folder = tmp_path / "img" / lang
    folder.mkdir(parents=True)
    photo, proof = tmp_path / "garbage.png", tmp_path / "clean.png"
    photo.write_bytes(picture((120, 100, 70), label="garbage"))
    proof.write_bytes(picture((90, 150, 90), label="clean"))
    resident = page.locator(".pane[data-key=resident]")
    worker = page.locator(".pane[data-key=worker]")
    supervisor = page.locator(".pane[data-key=supervisor]")

    # The resident reports: consent, /report, a category, a photo with a caption, the place, submit.
    await resident.locator(".start").click()
    await resident.locator('[data-callback^="cs:yes"]').click()
    await resident.locator("textarea").fill("/report")
    await resident.locator("textarea").press("Enter")
    await resident.locator('[data-callback*=":kind:environment"]').click()
    await resident.locator('[data-callback*=":cat:exposed_garbage"]').wait_for()
    await save(resident, folder, "resident-1-category")
    await resident.locator('[data-callback*=":cat:exposed_garbage"]').click()
    await resident.locator(".photo-input").set_input_files(photo)
    await resident.locator("textarea").fill("小区门口垃圾堆积" if lang == "zh_CN" else "Rubbish piled up at the gate")
    await resident.locator(".send").click()
    await resident.locator(".msg.mine img.photo").wait_for()
    await resident.locator(".reply-keyboard button.requests-location").click()
    picker = page.locator("dialog.picker")
    await picker.wait_for()
    lat, lon = grid_point("SH-CN-01-001")
    await click_on_map(page, lat, lon)
    await picker.locator(".picked").wait_for()
    await save(picker, folder, "resident-2-location")
    await picker.locator("button[value=send]").click()
    await resident.locator(".msg.mine .location").wait_for()
    await resident.locator('[data-callback*=":submit"]').click()
    registered = resident.locator(".msg.bot", has_text=re.compile(r"SH-\d{8}-\d{6}")).first
    await registered.wait_for()
    number = re.search(r"SH-\d{8}-\d{6}", await registered.inner_text()).group()
    await save(resident, folder, "resident-3-registered")

    # The grid worker: the order arrives, accept, complete with a photo and a live location.
    order = worker.locator(".msg.bot", has_text=number).filter(has=page.locator('[data-callback^="wo:a:"]'))
    await order.wait_for()
    await worker.locator(".msg.bot img.photo").first.wait_for()
    await save(worker, folder, "worker-1-order")
    await order.locator('[data-callback^="wo:a:"]').click()
    await worker.locator('[data-callback^="wt:c:"]').wait_for()
    await save(worker, folder, "worker-2-accepted")

    # More time: the worker asks with /extend, the supervisor grants it.
    reason = "等待配件" if lang == "zh_CN" else "waiting for a spare part"
    await worker.locator("textarea").fill(f"/extend {number} {reason}")
    await worker.locator("textarea").press("Enter")
    await worker.locator('[data-callback^="ex:"]').first.wait_for()
    await worker.locator(".toast").wait_for(state="hidden")  # "accepted" from before would hide the question
    await save(worker, folder, "worker-5-extend")
    await worker.locator('[data-callback^="ex:"]').first.click()
    request = supervisor.locator(".msg.bot", has_text=number).filter(has=page.locator('[data-callback^="eg:"]'))
    await request.last.wait_for()
    await save(supervisor, folder, "supervisor-4-extension")
    told = await worker.locator(".msg.bot").count()
    await request.last.locator('[data-callback^="eg:"]').first.click()
    await worker.locator(".msg.bot").nth(told).wait_for()

    await worker.locator('[data-callback^="wt:c:"]').last.click()
    await worker.locator(".photo-input").set_input_files(proof)
    await worker.locator(".send").click()  # the photo's receipt brings the location button
    await worker.locator(".reply-keyboard button.requests-location").click()
    await picker.wait_for()
    await picker.locator("input[name=live]").check()
    await click_on_map(page, lat + 0.0001, lon + 0.0001)
    await picker.locator("button[value=send]").click()
    await worker.locator(".msg.mine .location").last.wait_for()
    card = supervisor.locator(".msg.bot", has_text=number).filter(has=page.locator('[data-callback^="sv:a:"]'))
    await card.wait_for()  # the proof reached the supervisor: the worker has been told it is submitted
    await save(worker, folder, "worker-3-completed")

    # The supervisor checks the proof and approves.
    await supervisor.locator(".msg.bot img.photo").first.wait_for()
    await supervisor.locator(".toast").wait_for(state="hidden")  # "extension granted" from before would cover the card
    await save(supervisor, folder, "supervisor-1-proof")
    await card.locator('[data-callback^="sv:a:"]').click()
    fixed = resident.locator('[data-callback^="fb:"][data-callback*=":y:"]')
    await fixed.wait_for()
    await save(supervisor, folder, "supervisor-2-approved")

    # The resident is told and gives feedback.
    await fixed.click()
    await resident.locator('[data-callback^="fb:"][data-callback$=":r:5"]').click()
    await resident.locator(".msg.bot", has_text="⭐⭐⭐⭐⭐").wait_for()
    await save(resident, folder, "resident-4-feedback")

    # Commands each guide mentions: the resident's /my, the worker going off duty, the supervisor's /stats.
    for pane, command, name in ((resident, "/my", "resident-5-my"), (worker, "/duty", "worker-4-duty"),
                                (supervisor, "/stats today", "supervisor-3-stats")):
        answers = await pane.locator(".msg.bot").count()
        await pane.locator("textarea").fill(command)
        await pane.locator("textarea").press("Enter")
        await pane.locator(".msg.bot").nth(answers).wait_for()
        await save(pane, folder, name)

    # Deleting one's data starts with a question; the picture stops there.
    answers = await resident.locator(".msg.bot").count()
    await resident.locator("textarea").fill("/delete")
    await resident.locator("textarea").press("Enter")
    await resident.locator(".msg.bot").nth(answers).wait_for()
    await save(resident, folder, "resident-6-delete")

    names = sorted(p.stem for p in folder.glob("*.png"))
    assert names == sorted(SHOTS)
    for path in folder.glob("*.png"):
        with Image.open(path) as image:
            assert 250 <= image.width <= 1200 and 200 <= image.height <= 760, (path.name, image.size)
        assert path.stat().st_size < 200_000, path.name
    if os.environ.get("ONEGRID_GUIDE_SHOTS") == "1":  # a test run never rewrites tracked files unless asked
        target = DOCS_IMG / lang
        target.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("*.png"):
            shutil.copyfile(path, target / path.name)
