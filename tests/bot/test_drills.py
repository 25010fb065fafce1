"""Drills (演练) through the real bot, the API and the loopback Bot API: a drill case from machine intake and a
drill warning from the upstream flow like the real thing, are labelled as drills in every message, leave the
KPIs (/stats, GET /api/v1/kpis) unchanged and put nothing in the upstream outbox."""

from __future__ import annotations

import asyncio

import httpx
from sqlmodel import func, select

from models.tables import Case, OutboxItem
from services.api_keys import create_key
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    GRID,
    STREET,
    add_supervisor,
    add_worker,
    answer_to,
    button,
    emulator,
    point_in,
    report,
    world,
)

BOSS, WANG = 9801, 9802
WAIT = 30.0  # seconds: generous, for a loaded test machine; passing runs take well under one


def outbox_rows(db, case_id: int) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(OutboxItem).where(OutboxItem.case_id == case_id)).one()


async def kpis(api, auth) -> dict:  # noqa: ANN001
    answer = await api.get("/api/v1/kpis", params={"area_code": STREET, "period": "today"}, headers=auth)
    assert answer.status_code == 200, answer.text
    return {k: v for k, v in answer.json().items() if k not in ("start", "end")}  # the period ends now


async def stats_text(boss, emulator) -> str:  # noqa: ANN001
    before = len(boss.inbox)
    await boss.send_command("stats", "today")
    await emulator.wait_for(lambda: len(boss.inbox) > before and boss.inbox[-1]["text"].startswith("📊"), timeout=WAIT)
    return boss.inbox[-1]["text"]


async def test_a_drill_flows_labelled_and_leaves_kpis_and_the_upstream_alone(world, emulator, db, clock) -> None:
    add_supervisor(db.sessions, clock.now(), BOSS, name="Boss Li")
    add_worker(db.sessions, clock.now(), WANG, name="Wang")
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    wang = emulator.user(WANG, first_name="Wang", language_code="en")
    _, token = await asyncio.to_thread(create_key, world.ctx, name="upstream", scopes=["read", "write", "intake"],
                                       area_code=STREET)
    auth = {"Authorization": f"Bearer {token}"}
    real = await asyncio.to_thread(report, world.ctx)  # a real case: it counts and it is relayed
    [order] = await wang.wait_inbox(1, timeout=WAIT)
    assert not order["text"].startswith("🧪")
    assert outbox_rows(db, real.id) > 0
    clock.advance(minutes=1)  # the period ends now, exclusive: the real case is inside it

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.api), base_url="http://onegrid.test") as api:
        kpis_before = await kpis(api, auth)
        stats_before = await stats_text(boss, emulator)
        assert "Registered: 1" in stats_before

        lat, lon = point_in(GRID)
        answer = await api.post("/api/v1/cases", headers=auth, json={
            "source": "camera", "source_event_id": "drill-1", "device_id": "cam-9",
            "category_code": "exposed_garbage", "lat": lat, "lon": lon, "description": "glass curtain wall exercise",
            "drill": True})
        assert answer.status_code == 201, answer.text
        number = answer.json()["case"]["number"]
        await emulator.wait_for(lambda: len(wang.inbox) >= 2, timeout=WAIT)
        drill_order = wang.inbox[1]
        assert drill_order["text"].startswith("🧪 [DRILL]\n") and number in drill_order["text"]
        await wang.press(drill_order, button(drill_order, "wo:a:"))
        await answer_to(emulator, WANG, timeout=WAIT)
        await emulator.wait_for(lambda: "You accepted" in wang.inbox[1]["text"], timeout=WAIT)
        assert wang.inbox[1]["text"].startswith("🧪 [DRILL]\n")  # the edited order keeps the label

        warned = await api.post("/api/v1/warnings", headers=auth, json={
            "area_code": GRID, "level": "red", "text": "Curtain-wall drill at 15:00", "drill": True})
        assert warned.status_code == 201, warned.text
        assert (warned.json()["drill"], warned.json()["recipients"]) == (True, 1)
        await emulator.wait_for(lambda: any("Curtain-wall drill" in m["text"] for m in wang.inbox), timeout=WAIT)
        warning = next(m for m in wang.inbox if "Curtain-wall drill" in m["text"])
        assert warning["text"].startswith("🧪 [DRILL]\n⚠️ 🔴 Red warning for")

        clock.advance(minutes=1)  # the drill case is inside the period too
        kpis_after = await kpis(api, auth)
    assert kpis_after == kpis_before
    assert await stats_text(boss, emulator) == stats_before
    with db.sessions() as s:
        drill = s.exec(select(Case).where(Case.number == number)).one()
    assert drill.drill is True and drill.assignee_id is not None  # accepted, like a real case
    assert outbox_rows(db, drill.id) == 0  # never relayed upstream: it has no drill flag
