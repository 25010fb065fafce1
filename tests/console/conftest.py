"""Sandbox harness: OneGrid in sandbox mode (no bot token), served by uvicorn on a free loopback port.

The app is built by the real factory with the Changning district of the demo map and the
catalogue in the store; `start_background` starts the emulator, the bot polling it and the sender,
exactly as `onegrid serve` does. Tests talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image, ImageDraw
from shapely.geometry import shape

from bot.sandbox import DEMO_PEOPLE, Sandbox
from onegrid.app import OneGrid, build, start_background, stop_background
from onegrid.clock import FakeClock
from onegrid.settings import Settings
from services.areas import import_geojson
from services.catalogue import apply_catalogue, load_catalogue

ROOT = Path(__file__).resolve().parents[2]
DEMO_MAP = ROOT / "data" / "shanghai-demo-grids.geojson"
DISTRICT = "SH-CN"  # 长宁区; its street SH-CN-01 is 江苏路街道
CONSOLE_HEADERS = {"X-OneGrid-Console": "1"}
PEOPLE = {p.key: p for p in DEMO_PEOPLE}


def _district_map() -> dict[str, Any]:
    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    keep = [f for f in doc["features"]
            if f["properties"]["level"] == "city" or f["properties"]["code"].startswith(DISTRICT)]
    return {"type": "FeatureCollection", "features": keep}


DISTRICT_MAP = _district_map()


def grid_point(code: str) -> tuple[float, float]:
    """(lat, lon) of a point well inside the area `code`."""
    feature = next(f for f in DISTRICT_MAP["features"] if f["properties"]["code"] == code)
    p = shape(feature["geometry"]).representative_point()
    return p.y, p.x


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def picture(colour: tuple[int, int, int] = (30, 120, 60), size: tuple[int, int] = (640, 480),
            fmt: str = "PNG", label: str = "") -> bytes:
    """A real picture with some structure (so perceptual hashes of different colours differ)."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=(250, 250, 250))
    draw.ellipse((size[0] // 2, size[1] // 3, size[0] - 20, size[1] - 20), fill=(colour[2], colour[0], colour[1]))
    if label:
        draw.text((10, 10), label, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def seed_store(sessions, clock: FakeClock) -> None:  # noqa: ANN001
    apply_catalogue(sessions, load_catalogue())
    import_geojson(sessions, DISTRICT_MAP, now=clock.now())


def sandbox_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, database_url=db_url, data_dir=data_dir, api_port=free_port(),
                    delivery_poll_interval_s=0.05, **overrides)


@dataclass
class Running:
    """A OneGrid in sandbox mode, serving HTTP on `base_url`."""

    app: OneGrid
    server: uvicorn.Server
    serving: asyncio.Task
    base_url: str

    @property
    def sandbox(self) -> Sandbox:
        return self.app.sandbox

    def persona_id(self, key: str) -> int:
        return self.sandbox.persona_by_key(key).user.id

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10)


async def serve_sandbox(app: OneGrid) -> Running:
    """Start the background parts and uvicorn on the settings' port; returns once it accepts requests."""
    server = uvicorn.Server(uvicorn.Config(app.api, host="127.0.0.1", port=app.settings.api_port,
                                           log_level="warning", lifespan="off"))
    app.sandbox.shutting_down = lambda: server.should_exit
    await start_background(app, polling_timeout=1)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not server.started:
        if task.done():
            await task  # raises what stopped it
        if loop.time() > deadline:
            raise TimeoutError("uvicorn did not start")
        await asyncio.sleep(0.02)  # polling a starting server, not letting time pass
    return Running(app, server, task, f"http://127.0.0.1:{app.settings.api_port}")


async def stop_sandbox(running: Running) -> None:
    running.server.should_exit = True
    await asyncio.wait_for(running.serving, 15)
    await stop_background(running.app)
    running.app.engine.dispose()


@pytest.fixture
async def sandbox(db, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Running]:
    """OneGrid in sandbox mode on the district map, served on a free loopback port."""
    seed_store(db.sessions, clock)
    app = build(sandbox_settings(db.url, tmp_path), clock=clock)
    running = await serve_sandbox(app)
    yield running
    await stop_sandbox(running)


class EventStream:
    """A reader of the console's server-sent events."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 15.0) -> tuple[str, Any]:
        """The next event as (name, data); comments and retry hints are skipped."""
        async def read() -> tuple[str, Any]:
            name, data = "message", []
            async for line in self._lines:
                if line == "":
                    if data:
                        return name, json.loads("\n".join(data))
                    name = "message"
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
            raise EOFError("the stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def until(self, predicate, timeout: float = 10.0) -> tuple[str, Any]:  # noqa: ANN001
        """Read events until `predicate(name, data)` holds; returns that event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            name, data = await self.next(max(deadline - loop.time(), 0.01))
            if predicate(name, data):
                return name, data
