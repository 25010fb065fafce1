"""A world with a listed elder, a night roster and a 居委会 contact; the sensor's alarm sent over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from services import duty_roster, elders, welfare
from services.api_keys import create_key
from tests.worker_support import GRID, STREET, add_supervisor, add_worker, point_in

NIGHT_WORKER, DAY_WORKER, BOSS, FAMILY, COMMITTEE = 9501, 9502, 9503, 9504, 9505
DEVICE = "DS-1001"
NIGHT = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai, a Saturday


def list_elder(ctx: Any) -> int:
    elder, _ = elders.create(ctx, principal=None, data=elders.ElderInput(
        name="陈阿婆", address="南京东路100弄3号201室", consent_by="陈阿婆本人", consent_at=datetime(2026, 11, 1, tzinfo=UTC),
        grid_code=GRID, devices=[(DEVICE, "door"), ("WM-77", "water")], key_holder_name="邻居赵阿姨",
        key_holder_phone="13900001111",
        contacts=[elders.Contact("王芳", "13800002222", FAMILY, True), elders.Contact("李强", "13700003333", None, True),
                  elders.Contact("张三", "13600004444", None, False)]))
    return elder.id


async def night_world(world: Any, db: Any, clock: Any) -> dict[str, int]:
    """The night-time roster of the street (20:00-08:00, every day) covers the grid; a day worker is on normal
    duty but not on the roster; the street's supervisor; the street's 居委会 with a chat."""
    clock.set(NIGHT)
    now = clock.now()
    night = add_worker(db.sessions, now, NIGHT_WORKER, department_code="residents_committee", on_duty=False,
                       name="Night Wang")
    add_worker(db.sessions, now, DAY_WORKER, department_code="residents_committee", on_duty=True)
    boss = add_supervisor(db.sessions, now, BOSS, area_code=STREET, name="Boss Li")
    ctx = world.ctx
    await asyncio.to_thread(duty_roster.add_shift, ctx, principal=None, data=duty_roster.ShiftInput(
        area_code=STREET, person_id=night, weekdays=list(range(7)), start="20:00", end="08:00"))
    await asyncio.to_thread(welfare.add_contact, ctx, area_code=STREET, name="江苏路居委会", phone="021-62000000",
                            chat_id=COMMITTEE, locale="en")
    elder_id = await asyncio.to_thread(list_elder, ctx)
    return {"night": night, "boss": boss, "elder": elder_id}


async def sensor_alarm(world: Any, *, event: str = "ev-1", device: str = DEVICE,
                       category: str = "elderly_door_sensor_alarm") -> httpx.Response:
    """The sensor platform's alarm, POSTed to the machine intake like the real platform does."""
    _, token = await asyncio.to_thread(create_key, world.ctx, name=f"sensors-{event}", scopes=["intake"])
    lat, lon = point_in(GRID)
    body = {"source": "sensor", "source_event_id": event, "device_id": device, "category_code": category,
            "lat": lat, "lon": lon, "description": "no door opening for 12 hours"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.api), base_url="http://onegrid.test") as c:
        return await c.post("/api/v1/cases", json=body, headers={"Authorization": f"Bearer {token}"})
