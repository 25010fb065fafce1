"""The daily digest through the real bot: the supervisor's chat gets the chart photo, then the overdue list."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from PIL import Image

from models.lifecycle import Status
from models.tables import Case, CaseSource
from services import digest
from services.db import transaction
from tests.worker_support import GRID, STREET, add_supervisor, emulator, world  # noqa: F401  (fixtures)

BOSS = 9601


async def test_supervisor_receives_the_digest_photo_and_the_overdue_list(world, emulator, db, clock) -> None:
    add_supervisor(db.sessions, clock.now(), BOSS, area_code=STREET, name="Boss Li")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    six_pm = datetime(2026, 11, 21, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
    with transaction(db.sessions) as s:
        case = Case(number="D-0001", source=CaseSource.RESIDENT, category_code="exposed_garbage", lat=31.2,
                    lon=121.4, grid_code=GRID, status=Status.DISPATCHED, created_at=six_pm - timedelta(days=2),
                    updated_at=six_pm - timedelta(days=2), handle_due_at=six_pm - timedelta(hours=5))
        s.add(case)
    clock.set(six_pm)

    assert await asyncio.to_thread(digest.run_due, world.ctx) == 1

    photo, listing = await boss.wait_inbox(2)
    largest = max(photo["photo"], key=lambda size: size["width"])
    assert (largest["width"], largest["height"]) == (1000, 560)
    stored = emulator.files.get(largest["file_id"])
    with Image.open(io.BytesIO(stored.data)) as image:
        assert image.format == "PNG"
    assert photo["caption"].startswith("📈 Daily digest · East Nanjing Road · 2026-11-21")
    assert "Today: 1 open, 0 closed." in photo["caption"]
    assert any(e["type"] == "bold" for e in photo.get("caption_entities", []))
    assert listing["text"].startswith("⏰ Overdue cases in East Nanjing Road: 1.")
    assert "D-0001 · Exposed garbage · East Nanjing Road Grid 1" in listing["text"]
    assert "late by 5 h 0 min" in listing["text"]
    # A later tick the same evening sends nothing more.
    clock.set(six_pm + timedelta(hours=1))
    assert await asyncio.to_thread(digest.run_due, world.ctx) == 0
