"""Helpers for the work-order tests (tests/store/test_dispatch_*.py, test_worker_*.py, tests/bot/test_worker_*.py).

The demo map and the default catalogue are loaded into the test's store; people are Person rows;
pictures are made with Pillow so each one is a genuinely different image.
"""

from __future__ import annotations

import io
import json
import random
import zlib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from shapely.geometry import shape
from sqlmodel import select

from models.lifecycle import Actor, Role
from models.tables import Area, Case, CaseSource, Notification, Person, Photo
from services.areas import import_geojson
from services.cases import report_case
from services.catalogue import apply_catalogue, load_catalogue
from services.context import ServiceContext
from onegrid.wiring import make_bus
from services.db import transaction
from services.photos import clean_photo, save_photo

DEMO_MAP = Path(__file__).resolve().parent.parent / "data" / "shanghai-demo-grids.geojson"

# A grid of the demo map, its street, and a neighbouring grid of the same street.
GRID = "SH-HP-01-001"
STREET = "SH-HP-01"
OTHER_GRID = "SH-HP-01-002"


def load_world(sessions: Any, now: Any) -> None:
    """The demo map and the default catalogue, as `onegrid setup` loads them."""
    import_geojson(sessions, DEMO_MAP, now=now)
    apply_catalogue(sessions, load_catalogue())


@lru_cache(maxsize=64)
def point_in(grid_code: str) -> tuple[float, float]:
    """(lat, lon) of a point well inside the grid (its representative point)."""
    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    for feature in doc["features"]:
        if feature["properties"]["code"] == grid_code:
            point = shape(feature["geometry"]).representative_point()
            return point.y, point.x
    raise KeyError(grid_code)


def offset(lat: float, lon: float, *, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    """The point `north_m` metres north, then `east_m` metres east, of (lat, lon) on the WGS-84 ellipsoid."""
    from geopy.distance import geodesic

    point = geodesic(meters=abs(north_m)).destination((lat, lon), 0 if north_m >= 0 else 180)
    point = geodesic(meters=abs(east_m)).destination(point, 90 if east_m >= 0 else 270)
    return point.latitude, point.longitude


def add_person(sessions: Any, now: Any, *, telegram_user_id: int, roles: list[str], area_code: str | None = None,
               department_code: str | None = None, on_duty: bool = True, name: str = "", locale: str = "en",
               phone: str | None = None, active: bool = True) -> int:
    with transaction(sessions) as s:
        person = Person(telegram_user_id=telegram_user_id, display_name=name or f"Person {telegram_user_id}",
                        roles=roles, area_code=area_code, department_code=department_code, on_duty=on_duty,
                        locale=locale, phone=phone, active=active, created_at=now)
        s.add(person)
        s.flush()
        return person.id


def add_worker(sessions: Any, now: Any, telegram_user_id: int, *, area_code: str = GRID,
               department_code: str = "greening_appearance", **kw: Any) -> int:
    return add_person(sessions, now, telegram_user_id=telegram_user_id, roles=["worker"], area_code=area_code,
                      department_code=department_code, **kw)


def add_supervisor(sessions: Any, now: Any, telegram_user_id: int, *, area_code: str = STREET, **kw: Any) -> int:
    return add_person(sessions, now, telegram_user_id=telegram_user_id, roles=["supervisor"], area_code=area_code,
                      **kw)


def report(ctx: ServiceContext, *, category: str = "exposed_garbage", grid: str = GRID, reporter_id: int | None = None,
           source: CaseSource = CaseSource.RESIDENT, description: str = "Garbage piled by the gate",
           address: str | None = "12 Nanjing East Road", source_event_id: str | None = None,
           photo: bytes | None = None, photo_unique_id: str | None = None,
           at: tuple[float, float] | None = None, dispatch_now: bool = True) -> Case:
    """Register a case in `grid` the way the report flow does (the resident's photo attached before dispatch).

    `dispatch_now`: dispatch it inline right after the commit (as without a dispatcher loop), so the caller
    sees its offers at once; False leaves it to `ctx.on_registered` (tests of the dispatcher itself).
    """
    lat, lon = at or point_in(grid)
    role = Role.WORKER if source == CaseSource.PATROL else Role.RESIDENT if reporter_id else Role.SYSTEM
    before = None
    if photo is not None:
        clean = clean_photo(photo)
        path, _ = save_photo(ctx.settings.data_dir, clean)

        def before(session: Any, case: Case) -> None:
            session.add(Photo(case_id=case.id, uploader_id=reporter_id, purpose="report", path=path,
                              phash=clean.phash, telegram_file_unique_id=photo_unique_id, width=clean.width,
                              height=clean.height, created_at=ctx.clock.now()))

    if dispatch_now:  # offered before this returns, in this thread, even where a dispatcher loop runs
        ctx = replace(ctx, on_registered=None)
    return report_case(ctx, actor=Actor(role, reporter_id), source=source, category_code=category, lat=lat, lon=lon,
                       description=description, address=address, source_event_id=source_event_id,
                       before_dispatch=before)


def picture(seed: int, size: tuple[int, int] = (640, 480), fmt: str = "JPEG") -> bytes:
    """A distinct picture per seed (random shapes), so perceptual hashes differ between seeds."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        x1, y1 = x0 + rng.randrange(40, size[0] // 2), y0 + rng.randrange(40, size[1] // 2)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, format=fmt, quality=90)
    return out.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A tiny PNG declaring side×side pixels (a decompression bomb: ~400 MP from a few hundred KB)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def truncated_jpeg(seed: int = 99) -> bytes:
    data = picture(seed, (1024, 768))
    return data[: len(data) // 2]


def pdf_bytes() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def queued(sessions: Any, chat_id: int, method: str | None = None) -> list[Notification]:
    with sessions() as s:
        query = select(Notification).where(Notification.chat_id == chat_id).order_by(Notification.id)
        if method:
            query = query.where(Notification.method == method)
        return list(s.exec(query).all())


def area_name(sessions: Any, code: str) -> str:
    with sessions() as s:
        return s.exec(select(Area.name_en).where(Area.code == code)).one()


def make_ctx(sessions: Any, clock: Any, data_dir: Path, **settings: Any) -> ServiceContext:
    """A service context over the demo world (map, grid index, catalogue) with photos under `data_dir`."""
    from onegrid.settings import Settings
    from services.gridmap import GridMap

    load_world(sessions, clock.now())
    return ServiceContext(bus=make_bus(), sessions=sessions, clock=clock, grid_map=GridMap(demo_index()),
                          settings=Settings(_env_file=None, data_dir=data_dir, **settings))


@lru_cache(maxsize=1)
def demo_index() -> Any:
    """The demo map's point → grid index, built once per test process (the same map every test loads)."""
    from services.gridmap import GridIndex

    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    grids = [(f["properties"]["code"], shape(f["geometry"])) for f in doc["features"]
             if f["properties"]["level"] == "grid"]
    return GridIndex.build(grids)


# -- bot tests ---------------------------------------------------------------------------------------
# Import these into a bot test module to use them (they override tests/bot/conftest.py's `emulator`).

import pytest  # noqa: E402


@pytest.fixture
async def emulator(clock):  # noqa: ANN001, ANN201
    """The loopback Bot API with Telegram's limits on, its message dates following the test's clock
    (so "sent just now" and "sent ten minutes ago" mean the same to the emulator and to OneGrid)."""
    from bot.emulator import BotApiEmulator

    lag = [0.0]  # a test sets lag[0] = seconds to date new messages that far in the past
    async with BotApiEmulator(limits=True, wall_time=lambda: clock.now().timestamp() - lag[0]) as emu:
        emu.date_lag = lag
        yield emu


@pytest.fixture
async def world(onegrid, db, clock):  # noqa: ANN001, ANN201
    """The running app with the demo map and catalogue loaded (as after `onegrid setup`)."""
    import asyncio

    await asyncio.to_thread(load_world, db.sessions, clock.now())
    onegrid.ctx.grid_map.replace(demo_index())
    return onegrid


def settle(clock, seconds: float = 10.0) -> None:  # noqa: ANN001
    """Move the clock past messages queued a second apart because Telegram takes one message a second
    per chat (a verification card's proof photos); the sender then sends them."""
    clock.advance(seconds=seconds)


def button(message: dict, prefix: str) -> str:
    """The callback_data of the message's inline button whose data starts with `prefix`."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for key in row:
            if key.get("callback_data", "").startswith(prefix):
                return key["callback_data"]
    raise LookupError(f"no button {prefix!r} under message {message.get('message_id')}: {message.get('reply_markup')}")


def button_texts(message: dict) -> list[str]:
    return [key["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for key in row]


async def answer_to(emulator, user_id: int, count: int = 1, timeout: float = 15.0) -> list[dict]:  # noqa: ANN001
    """The callback-query answers the bot gave `user_id`, once there are `count` of them (15 s at most, as
    `wait_for`: under a whole suite on a busy machine a handler has taken more than 5 s)."""
    def answers() -> list[dict]:
        return [a for a in emulator.callback_answers if a["user_id"] == user_id]

    await emulator.wait_for(lambda: len(answers()) >= count, timeout=timeout)
    return answers()
