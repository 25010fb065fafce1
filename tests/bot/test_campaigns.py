"""A campaign through the real bot and the loopback Bot API: ten places imported from CSV, checked by the
grids' workers with checklist buttons, a photo and their location; one problem opens one linked case, and
the supervisor's progress card counts in place."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from models.campaigns import CampaignPlace, PlaceStatus
from models.lifecycle import Status
from models.tables import Case, OutboxItem
from services import campaigns
from services.campaign_import import read_places
from bot.emulator import BotApiEmulator
from onegrid.app import build, start_background, stop_background
from tests.bot.conftest import harness_settings
from tests.worker_support import (  # noqa: F401  (world is a fixture)
    GRID,
    OTHER_GRID,
    STREET,
    add_supervisor,
    add_worker,
    answer_to,
    area_name,
    button,
    offset,
    picture,
    point_in,
    world,
)

BOSS, WANG, ZHAO = 9701, 9702, 9703
WAIT = 30.0  # seconds: generous, for a loaded test machine; passing runs take well under one


# Dozens of messages to three chats: pacing at Telegram's one per second per chat would only make this slow,
# and it is tested elsewhere (tests/bot/test_delivery*.py); here the emulator does not limit and neither do we.
@pytest.fixture
async def emulator(clock):  # noqa: ANN001, ANN201
    async with BotApiEmulator(limits=False, wall_time=lambda: clock.now().timestamp()) as emu:
        yield emu


@pytest.fixture
async def onegrid(db, clock, emulator, tmp_path):  # noqa: ANN001, ANN201
    settings = harness_settings(db.url, emulator, tmp_path).model_copy(update={"delivery_chat_interval_s": 0.01})
    app = build(settings, clock=clock)
    await start_background(app, polling_timeout=1)
    yield app
    await stop_background(app)
    app.engine.dispose()


def places_csv() -> str:
    """Six places in GRID, four in OTHER_GRID, a few metres apart."""
    lines = ["name,lat,lon,address"]
    for n in range(10):
        grid = GRID if n < 6 else OTHER_GRID
        lat, lon = offset(*point_in(grid), north_m=8 * (n % 6))
        lines.append(f"Place {n + 1},{lat:.7f},{lon:.7f},{n + 1} Riverside Road")
    return "\n".join(lines) + "\n"


async def check_place(emulator, user, message: dict, place: CampaignPlace, *, problem: bool, seed: int) -> None:  # noqa: ANN001
    """Answer both items (the second a problem when `problem`), send a photo and the location at the place."""
    await user.press(message, button(message, f"yi:{place.id}:0:1"))
    await emulator.wait_for(lambda: "✅ 1. Drains clear" in _current(user, message)["text"], timeout=WAIT)
    await user.press(message, button(message, f"yi:{place.id}:1:{0 if problem else 1}"))
    mark = "⚠️" if problem else "✅"
    await emulator.wait_for(lambda: f"{mark} 2. Fence secure" in _current(user, message)["text"], timeout=WAIT)
    before = len(user.inbox)
    await user.send_photo(picture(seed))
    await emulator.wait_for(lambda: len(user.inbox) > before, timeout=WAIT)
    assert user.inbox[-1]["text"] == (f"✅ Photo for {place.name} received.\n"
                                      "Still needed: your location at the place.")
    before = len(user.inbox)
    await user.send_location(place.lat, place.lon, horizontal_accuracy=10)
    await emulator.wait_for(lambda: len(user.inbox) > before, timeout=WAIT)
    assert user.inbox[-1]["text"].startswith(f"✅ {place.name} checked. Thank you!")


def _current(user, message: dict) -> dict:  # noqa: ANN001
    return next(m for m in user.inbox if m["message_id"] == message["message_id"])


async def test_ten_places_one_problem_one_linked_case_and_a_card_that_counts(world, emulator, db, clock) -> None:
    now = clock.now()
    add_supervisor(db.sessions, now, BOSS, name="Boss Li")
    add_worker(db.sessions, now, WANG, name="Wang")
    add_worker(db.sessions, now, ZHAO, name="Zhao", area_code=OTHER_GRID)
    boss = emulator.user(BOSS, first_name="Li", language_code="en")
    wang = emulator.user(WANG, first_name="Wang", language_code="en")
    zhao = emulator.user(ZHAO, first_name="Zhao", language_code="en")

    summary = await asyncio.to_thread(
        campaigns.create_campaign, world.ctx, name="Typhoon check", area_code=STREET,
        checklist=["Drains clear", "Fence secure"], places=read_places(places_csv(), fmt="csv"),
        category_code="road_waterlogging")
    assert (summary.progress.total, summary.progress.checked) == (10, 0)
    street = f"{area_name(db.sessions, STREET)} ({STREET})"
    [card] = await boss.wait_inbox(1, timeout=WAIT)
    assert card["text"] == f"📋 Campaign «Typhoon check» in {street}\n0 of 10 checked, 0 with problems"
    tasks = {WANG: await wang.wait_inbox(6, timeout=WAIT), ZHAO: await zhao.wait_inbox(4, timeout=WAIT)}
    assert tasks[WANG][0]["text"].startswith("🔍 Campaign «Typhoon check»: check Place 1\nAddress: 1 Riverside Road\n")
    assert "▫️ 1. Drains clear\n▫️ 2. Fence secure" in tasks[WANG][0]["text"]
    with db.sessions() as s:
        places = {p.name: p for p in s.exec(select(CampaignPlace).order_by(CampaignPlace.id))}
    assert {p.grid_code for p in places.values()} == {GRID, OTHER_GRID}

    # Zhao may not answer a place of Wang's grid.
    await zhao.press(tasks[WANG][0], button(tasks[WANG][0], f"yi:{places['Place 1'].id}:0:1"))
    [refusal] = await answer_to(emulator, ZHAO, timeout=WAIT)
    assert refusal["text"] == "This place is not in your grid."

    seed = 700
    for user, messages in ((wang, tasks[WANG]), (zhao, tasks[ZHAO])):
        for message in messages:
            name = message["text"].split(": check ", 1)[1].split("\n", 1)[0]
            seed += 1
            await check_place(emulator, user, message, places[name], problem=name == "Place 3", seed=seed)
    await emulator.wait_for(lambda: "10 of 10 checked, 1 with problems" in boss.inbox[0]["text"], timeout=WAIT)
    assert boss.inbox[0]["message_id"] == card["message_id"]  # the same card, edited in place
    assert [m for m in boss.inbox if "checked," in m["text"]] == [boss.inbox[0]]  # no second card

    with db.sessions() as s:
        checked = s.exec(select(CampaignPlace).order_by(CampaignPlace.id)).all()
        linked = [p for p in checked if p.case_id is not None]
        case = s.get(Case, linked[0].case_id)
        assert all(p.status == PlaceStatus.CHECKED for p in checked)
        assert [p.name for p in linked] == ["Place 3"]
        assert (case.category_code, case.grid_code, case.drill) == ("road_waterlogging", GRID, False)
        assert "Fence secure" in case.description and "Drains clear" not in case.description
        assert s.exec(select(OutboxItem).where(OutboxItem.case_id == case.id)).first() is not None
    assert case.status != Status.REPORTED  # registered and dispatched like any case
    assert any(f"Case {case.number} was opened for the problem." in m["text"] for m in wang.inbox)

    ended = await asyncio.to_thread(campaigns.end_campaign, world.ctx, campaign_id=summary.id)
    assert ended.case_numbers == (case.number,)
    await emulator.wait_for(lambda: boss.inbox[-1]["text"].startswith("🏁"), timeout=WAIT)
    assert boss.inbox[-1]["text"] == ("🏁 Campaign «Typhoon check» ended: 10 of 10 checked, 1 with problems.\n"
                                      f"Cases opened: {case.number}")


async def test_a_bad_file_imports_nothing_and_a_far_location_is_refused(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), WANG, name="Wang")
    wang = emulator.user(WANG, first_name="Wang", language_code="en")
    far = offset(*point_in(GRID), north_m=50_000)
    bad = places_csv() + f"Outside,{far[0]},{far[1]},\nNo coordinates,,,\n"
    try:
        read_places(bad, fmt="csv")
    except Exception as exc:  # noqa: BLE001
        assert exc.problems == ["line 13: bad coordinates"]
    else:
        raise AssertionError("a line without coordinates was accepted")
    try:
        await asyncio.to_thread(campaigns.create_campaign, world.ctx, name="x", area_code=STREET, checklist=["a"],
                                places=read_places(places_csv() + f"Outside,{far[0]},{far[1]},\n", fmt="csv"))
    except campaigns.CampaignError as exc:
        assert exc.problems == [f"Outside: outside area {STREET}"]
    else:
        raise AssertionError("a place outside the area was accepted")
    with db.sessions() as s:
        assert s.exec(select(CampaignPlace)).first() is None

    await asyncio.to_thread(campaigns.create_campaign, world.ctx, name="Walls", area_code=GRID,
                            checklist=["Glass intact"], places=read_places(places_csv(), fmt="csv")[:1])
    [task] = await wang.wait_inbox(1, timeout=WAIT)
    with db.sessions() as s:
        place = s.exec(select(CampaignPlace)).one()
    await wang.press(task, button(task, f"yi:{place.id}:0:1"))
    await answer_to(emulator, WANG, timeout=WAIT)
    lat, lon = offset(place.lat, place.lon, north_m=800)
    before = len(wang.inbox)
    await wang.send_location(lat, lon, horizontal_accuracy=10)
    await emulator.wait_for(lambda: len(wang.inbox) > before, timeout=WAIT)
    assert wang.inbox[-1]["text"].startswith("❌ Location for Place 1 not accepted: it is 800 m from the place.")
    with db.sessions() as s:
        assert s.get(CampaignPlace, place.id).seen_at is None
