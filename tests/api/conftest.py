"""API harness: OneGrid built by its own factory on the demo map and catalogue, keys per area, an HTTP client.

Two streets of Huangpu district are used throughout: SH-HP-01 (East Nanjing Road, "street A")
and SH-HP-02 (The Bund, "street B"). `points[street]` are points inside that street's grids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_correlation_id import correlation_id
from shapely.geometry import shape

from onegrid.app import OneGrid, build
from onegrid.clock import FakeClock
from onegrid.settings import Settings
from services.api_keys import create_key
from services.areas import import_geojson
from services.catalogue import apply_catalogue, load_catalogue
from services.gridmap import GridIndex

DEMO_MAP = Path(__file__).resolve().parents[2] / "data" / "shanghai-demo-grids.geojson"
STREET_A, STREET_B = "SH-HP-01", "SH-HP-02"
SCHEMAS = Path(__file__).resolve().parents[2] / "api" / "open311_schemas"


@dataclass(frozen=True)
class DemoMap:
    doc: dict[str, Any]
    index: GridIndex
    points: dict[str, list[tuple[float, float]]]  # street code → (lat, lon) inside its grids


@pytest.fixture(scope="session")
def demo_map() -> DemoMap:
    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    grids = [(f["properties"]["code"], shape(f["geometry"])) for f in doc["features"]
             if f["properties"]["level"] == "grid"]
    index = GridIndex.build(grids)
    parent = {f["properties"]["code"]: f["properties"]["parent_code"] for f in doc["features"]}
    points: dict[str, list[tuple[float, float]]] = {}
    for code, geom in grids:
        p = geom.representative_point()
        assert index.lookup(p.x, p.y) == code
        points.setdefault(parent[code], []).append((p.y, p.x))
    return DemoMap(doc, index, points)


@dataclass
class ApiEnv:
    app: OneGrid
    client: httpx.AsyncClient
    clock: FakeClock
    map: DemoMap
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def ctx(self):  # noqa: ANN201
        return self.app.ctx

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def point(self, street: str, n: int = 0) -> tuple[float, float]:
        return self.map.points[street][n]

    def key(self, name: str, scopes: list[str], area: str | None = None, **kw: Any) -> str:
        _, token = create_key(self.ctx, name=name, scopes=scopes, area_code=area, **kw)
        self.tokens[name] = token
        return token

    async def intake(self, key: str, *, street: str = STREET_A, n: int = 0, event: str = "e1", device: str = "cam-1",
                     category: str = "exposed_garbage", headers: dict[str, str] | None = None,
                     **extra: Any) -> httpx.Response:
        lat, lon = self.point(street, n)
        body = {"source": "camera", "source_event_id": event, "device_id": device, "category_code": category,
                "lat": lat, "lon": lon, "description": "garbage seen by camera", **extra}
        return await self.client.post("/api/v1/cases", json=body, headers={**self.auth(key), **(headers or {})})


def api_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, database_url=db_url, data_dir=data_dir, **overrides)


def prepare_store(app: OneGrid, demo: DemoMap) -> None:
    """Areas and the catalogue in the store, and the demo index in the app's grid map."""
    import_geojson(app.ctx.sessions, demo.doc, now=app.ctx.clock.now())
    apply_catalogue(app.ctx.sessions, load_catalogue())
    app.ctx.grid_map.replace(demo.index)


def client_for(app: OneGrid) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api), base_url="http://onegrid.test")


@pytest.fixture
async def api(db, clock: FakeClock, tmp_path: Path, demo_map: DemoMap) -> AsyncIterator[ApiEnv]:
    app = build(api_settings(db.url, tmp_path), clock=clock)
    prepare_store(app, demo_map)
    async with client_for(app) as client:
        env = ApiEnv(app, client, clock, demo_map)
        env.key("admin", ["admin"])
        env.key("street_a", ["read", "write", "intake"], STREET_A)
        env.key("street_b", ["read", "write", "intake"], STREET_B)
        yield env
    app.engine.dispose()


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def open311_validator(name: str):  # noqa: ANN201
    """A Draft 4 validator for one of the bundled Open311 schemas, resolving their relative $refs."""
    from jsonschema import Draft4Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    registry = Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text(encoding="utf-8")), default_specification=DRAFT4))
        for path in SCHEMAS.glob("*.json") if path.name != "swagger.json"
    )
    return Draft4Validator(load_schema(name), registry=registry, format_checker=FormatChecker())


@contextmanager
def machine_event_log() -> Iterator[list[tuple[str | None, str | None]]]:
    """(case number, request id) of each "machine event from" line logged inside, where it was logged."""
    seen: list[tuple[str | None, str | None]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # runs where the line was logged
            if record.getMessage().startswith("machine event from"):
                seen.append((getattr(record, "case", None), correlation_id.get()))

    handler, log = Keep(), logging.getLogger("services.case_commands")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield seen
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
