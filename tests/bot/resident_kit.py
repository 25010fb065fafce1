"""Helpers for resident tests: a seeded OneGrid (demo district map + catalogue), pictures, and a
resident who can find messages and press buttons the way a person reads the chat.
"""

from __future__ import annotations

from dataclasses import replace

import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from shapely.geometry import shape
from sqlmodel import select

from bot.emulator import BotApiEmulator, FakeUser
from models.tables import Case, Person
from onegrid.app import OneGrid, build, start_background, stop_background
from onegrid.clock import FakeClock
from services.areas import import_geojson
from services.catalogue import apply_catalogue, load_catalogue
from tests.bot.conftest import harness_settings

ROOT = Path(__file__).resolve().parents[2]
DEMO_MAP = ROOT / "data" / "shanghai-demo-grids.geojson"
DISTRICT = "SH-CN"  # 长宁区, whose street SH-CN-01 is 江苏路街道


def _district_features() -> dict[str, Any]:
    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    keep = []
    for f in doc["features"]:
        code = f["properties"]["code"]
        if f["properties"]["level"] == "city" or code == DISTRICT or code.startswith(DISTRICT + "-01"):
            keep.append(f)
    return {"type": "FeatureCollection", "features": keep}


_FEATURES = _district_features()


def grid_point(code: str) -> tuple[float, float]:
    """(lat, lon) of a point well inside the grid `code`."""
    feature = next(f for f in _FEATURES["features"] if f["properties"]["code"] == code)
    p = shape(feature["geometry"]).representative_point()
    return p.y, p.x


GRID_1 = "SH-CN-01-001"
GRID_2 = "SH-CN-01-002"
INSIDE = grid_point(GRID_1)
ELSEWHERE = grid_point(GRID_2)
OUTSIDE = (39.9042, 116.4074)  # Beijing: no grid of this map


def seed(sessions, clock: FakeClock) -> None:  # noqa: ANN001
    apply_catalogue(sessions, load_catalogue())
    import_geojson(sessions, _FEATURES, now=clock.now())


async def start_app(db_url: str, emulator: BotApiEmulator, data_dir: Path, clock: FakeClock,
                    **overrides: Any) -> OneGrid:
    settings = harness_settings(db_url, emulator, data_dir).model_copy(update=overrides)
    app = build(settings, clock=clock)
    await start_background(app, polling_timeout=1)
    return app


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings of the `resident_app` fixture."""
    return {}


@pytest.fixture
async def resident_app(db, clock: FakeClock, emulator: BotApiEmulator, tmp_path: Path,
                       settings_overrides: dict[str, Any]) -> AsyncIterator[OneGrid]:
    """OneGrid with the 江苏路 street of the demo map and the default catalogue, polling the emulator."""
    seed(db.sessions, clock)
    app = await start_app(db.url, emulator, tmp_path, clock, **settings_overrides)
    yield app
    await stop_background(app)
    app.engine.dispose()


# -- pictures ---------------------------------------------------------------------------------------

def picture(seed: int = 1, size: tuple[int, int] = (640, 480)) -> Image.Image:
    im = Image.new("RGB", size, (180 + seed % 60, 200, 220))
    draw = ImageDraw.Draw(im)
    for i in range(14):
        x = (seed * 97 + i * 53) % size[0]
        y = (seed * 31 + i * 71) % size[1]
        draw.rectangle([x, y, x + size[0] // 5, y + size[1] // 6], fill=((seed * 40 + i * 20) % 255, 80, 120))
    return im


def encode(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg_with_gps(seed: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 13.0, 27.0), 3: "E", 4: (121.0, 26.0, 12.0)}
    return encode(picture(seed), "JPEG", exif=exif.tobytes())


# -- reading the chat ---------------------------------------------------------------------------

def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row]


@dataclass
class Resident:
    """A fake Telegram user plus the patience of a person reading the chat."""

    user: FakeUser
    emulator: BotApiEmulator

    @property
    def id(self) -> int:
        return self.user.id

    def messages(self) -> list[dict[str, Any]]:
        return self.user.inbox

    def texts(self) -> list[str]:
        return [m.get("text") or m.get("caption") or "" for m in self.messages()]

    async def expect(self, needle: str | Callable[[dict[str, Any]], bool], *, after: int = 0,
                     timeout: float = 15.0) -> dict[str, Any]:
        """The first bot message (with message_id > `after`) whose text contains `needle`, once it arrives."""
        def match(m: dict[str, Any]) -> bool:
            if m["message_id"] <= after:
                return False
            if callable(needle):
                return needle(m)
            return needle in (m.get("text") or m.get("caption") or "")

        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages() if match(m)), None)

        return await self.emulator.wait_for(found, timeout=timeout, chat_id=self.id)

    async def press(self, message: dict[str, Any], label: str) -> dict[str, Any]:
        """Press the inline button whose text contains `label` (as the message looks now)."""
        current = next(m for m in self.messages() if m["message_id"] == message["message_id"])
        for b in buttons(current):
            if label in b["text"]:
                return await self.user.press(current, b["callback_data"])
        raise LookupError(f"no button {label!r} in {[b['text'] for b in buttons(current)]}")

    async def wait_buttons_gone(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        def gone() -> dict[str, Any] | None:
            m = next(m for m in self.messages() if m["message_id"] == message["message_id"])
            return m if not buttons(m) else None

        return await self.emulator.wait_for(gone, timeout=timeout, chat_id=self.id)

    def last_id(self) -> int:
        msgs = self.emulator.history(self.id)
        return msgs[-1]["message_id"] if msgs else 0

    def reply_keyboard_texts(self) -> list[str]:
        kb = self.emulator.reply_keyboard(self.id) or {}
        return [b["text"] for row in kb.get("keyboard", []) for b in row]


def person_of(db, telegram_user_id: int) -> Person | None:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()


def cases_of(db) -> list[Case]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(Case).order_by(Case.id)).all())


async def press_data(resident: Resident, message: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Press the inline button whose callback data starts with `prefix` (language-independent)."""
    current = next(m for m in resident.messages() if m["message_id"] == message["message_id"])
    for b in buttons(current):
        if b.get("callback_data", "").startswith(prefix):
            return await resident.user.press(current, b["callback_data"])
    raise LookupError(f"no button {prefix!r} in {[b.get('callback_data') for b in buttons(current)]}")


async def consent(resident: Resident) -> None:
    """/start and agree, as a new resident does once."""
    mark = resident.last_id()
    await resident.user.send_command("/start")
    greeting = await resident.expect(lambda m: any(b["callback_data"].startswith("cs:yes")
                                                   for b in buttons(m)), after=mark)
    await press_data(resident, greeting, "cs:yes")
    await resident.emulator.wait_for(lambda: len(resident.messages()) >= 2 and not buttons(
        next(m for m in resident.messages() if m["message_id"] == greeting["message_id"])), timeout=15)


async def standard_report(resident: Resident, *, kind_prefix: str = "rp:", kind: str = "environment",
                          category: str = "exposed_garbage", photo: bytes | None = None,
                          caption: str | None = "Overflowing bins", where: tuple[float, float] = INSIDE,
                          as_document: tuple[str, str] | None = None) -> tuple[dict[str, Any], int]:
    """Drive /report → kind → category → photo (+caption) → location; returns (summary card, taps so far)."""
    taps = 0
    mark = resident.last_id()
    await resident.user.send_command("/report")
    taps += 1
    menu = await resident.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    await press_data_contains(resident, menu, f":kind:{kind}")
    taps += 1
    await resident.emulator.wait_for(lambda: any(f":cat:{category}" in b["callback_data"] for b in buttons(
        next(m for m in resident.messages() if m["message_id"] == menu["message_id"]))), timeout=15)
    await press_data_contains(resident, menu, f":cat:{category}")
    taps += 1
    await resident.expect(lambda m: "📷" in (m.get("text") or ""), after=menu["message_id"] - 1)
    data = photo if photo is not None else jpeg_with_gps()
    mark = resident.last_id()
    if as_document:
        await resident.user.send_document(data, as_document[0], as_document[1], caption=caption)
    else:
        await resident.user.send_photo(data, caption=caption)
    taps += 1
    await resident.expect(lambda m: (m.get("text") or "").startswith("📷"), after=mark)
    mark = resident.last_id()
    await resident.user.send_location(*where)
    taps += 1
    card = await resident.expect(lambda m: any(":submit" in b["callback_data"] for b in buttons(m)), after=mark)
    return card, taps


async def quick_report(resident: Resident, *, category: str, description: str, photo: bytes | None = None,
                       where: tuple[float, float] = INSIDE) -> tuple[dict[str, Any], list[str]]:
    """/report → the category's one-tap shortcut on the first screen → a photo without caption → the
    location → a typed description; returns the summary card and the first screen's button labels
    (language-independent: it reads callback data)."""
    mark = resident.last_id()
    await resident.user.send_command("/report")
    menu = await resident.expect(lambda m: any(f":cat:{category}:" in b["callback_data"] for b in buttons(m)),
                                 after=mark)
    first_screen = [b["text"] for b in buttons(menu)]  # before the menu is edited into the photo prompt
    await press_data_contains(resident, menu, f":cat:{category}:")
    await resident.expect(lambda m: "📷" in (m.get("text") or ""), after=menu["message_id"] - 1)  # menu edited
    mark = resident.last_id()
    await resident.user.send_photo(photo if photo is not None else jpeg_with_gps())
    await resident.expect(lambda m: (m.get("text") or "").startswith("📷"), after=mark)
    mark = resident.last_id()
    await resident.user.send_location(*where)
    await resident.expect(lambda m: "✏️" in (m.get("text") or ""), after=mark)  # the description prompt
    mark = resident.last_id()
    await resident.user.send_text(description)
    card = await resident.expect(lambda m: any(":submit" in b["callback_data"] for b in buttons(m)), after=mark)
    return card, first_screen


async def press_data_contains(resident: Resident, message: dict[str, Any], part: str) -> dict[str, Any]:
    current = next(m for m in resident.messages() if m["message_id"] == message["message_id"])
    for b in buttons(current):
        if part in b.get("callback_data", ""):
            return await resident.user.press(current, b["callback_data"])
    raise LookupError(f"no button with {part!r} in {[b.get('callback_data') for b in buttons(current)]}")


async def submit(resident: Resident, card: dict[str, Any]) -> dict[str, Any]:
    mark = resident.last_id()
    await press_data_contains(resident, card, ":submit")
    return await resident.expect(lambda m: "SH-" in (m.get("text") or "") and m["message_id"] > mark, after=mark)


# -- the store, as other parts of OneGrid would have left it ------------------------------------

def make_person(db, telegram_user_id: int | None, *, locale: str = "en", roles: tuple[str, ...] = ("resident",),
                consented: bool = True, name: str = "") -> int:  # noqa: ANN001
    from datetime import UTC, datetime

    now = datetime(2026, 11, 20, tzinfo=UTC)
    with db.sessions() as s, s.begin():
        person = Person(telegram_user_id=telegram_user_id, locale=locale, roles=list(roles), display_name=name,
                        consented_at=now if consented else None, created_at=now, area_code="SH-CN-01")
        s.add(person)
        s.flush()
        return person.id


def seed_case(app: OneGrid, *, person_id: int, category: str = "exposed_garbage",
              where: tuple[float, float] = INSIDE, description: str = "seeded") -> Case:
    """A resident's case opened through the case service, followed by its reporter (no chat involved)."""
    import secrets

    from models.lifecycle import Actor, Role
    from models.resident import CaseFollower, FollowKind, ReportKind, ReportReceipt
    from models.tables import CaseSource
    from services import cases

    now = app.ctx.clock.now()

    def attach(session, case) -> None:  # noqa: ANN001
        session.add(CaseFollower(case_id=case.id, person_id=person_id, kind=FollowKind.REPORTER, created_at=now))
        session.add(ReportReceipt(person_id=person_id, draft_id=secrets.token_hex(4), case_id=case.id,
                                  kind=ReportKind.NEW_CASE, created_at=now))

    # Inline dispatch, in this thread: the test's event loop (where the dispatcher loop runs) is blocked here.
    case = cases.report_case(replace(app.ctx, on_registered=None), actor=Actor(Role.RESIDENT, person_id), source=CaseSource.RESIDENT,
                             category_code=category, lat=where[0], lon=where[1], description=description,
                             before_dispatch=attach)
    return case


def offset(point: tuple[float, float], *, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    import math

    lat, lon = point
    return lat + north_m / 111_320.0, lon + east_m / (111_320.0 * math.cos(math.radians(lat)))
