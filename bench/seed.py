"""A benchmark store: migrated, the demo map and catalogue, workers on duty, a supervisor per district, an intake key."""

from __future__ import annotations

import json
import random
from pathlib import Path

from shapely.geometry import shape

from models.tables import Person
from onegrid.clock import SystemClock
from onegrid.settings import Settings
from onegrid.wiring import make_bus
from services.api_keys import create_key
from services.areas import import_geojson
from services.catalogue import apply_catalogue, load_catalogue
from services.context import ServiceContext
from services.db import make_engine, make_session_factory, transaction, upgrade

ROOT = Path(__file__).resolve().parent.parent
DEMO_MAP = ROOT / "data" / "shanghai-demo-grids.geojson"
DEPARTMENTS = ("greening_appearance", "traffic_police", "road_maintenance", "urban_management")


def seed_store(url: str, data_dir: Path, *, workers: int, map_path: Path = DEMO_MAP,
               seed: int = 7) -> tuple[str, list[tuple[float, float]]]:
    """Set up the store at `url`; returns the intake key's token and a point inside each grid.

    Every street has a pool of one worker per department of the bench's categories (a case in a grid
    without its own worker goes to its street's pool), plus `workers` more in random grids.
    """
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    clock = SystemClock()
    ctx = ServiceContext(sessions=sessions, clock=clock, bus=make_bus(),
                         settings=Settings(_env_file=None, database_url=url, data_dir=data_dir))
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    now = clock.now()
    import_geojson(sessions, doc, now=now)
    apply_catalogue(sessions, load_catalogue())
    grids = [(f["properties"]["code"], shape(f["geometry"]).representative_point())
             for f in doc["features"] if f["properties"]["level"] == "grid"]
    districts = [f["properties"]["code"] for f in doc["features"] if f["properties"]["level"] == "district"]
    streets = [f["properties"]["code"] for f in doc["features"] if f["properties"]["level"] == "street"]
    rng = random.Random(seed)
    with transaction(sessions) as s:
        for index in range(workers):
            code, _ = rng.choice(grids)
            s.add(Person(telegram_user_id=20_000_000 + index, display_name=f"worker {index}", roles=["worker"],
                         area_code=code, department_code=DEPARTMENTS[index % len(DEPARTMENTS)], on_duty=True,
                         locale="zh_CN", created_at=now))
        for index, (code, department) in enumerate((c, d) for c in streets for d in DEPARTMENTS):
            s.add(Person(telegram_user_id=25_000_000 + index, display_name=f"pool worker {index}", roles=["worker"],
                         area_code=code, department_code=department, on_duty=True, locale="zh_CN", created_at=now))
        for index, code in enumerate(districts):
            s.add(Person(telegram_user_id=30_000_000 + index, display_name=f"supervisor {index}",
                         roles=["supervisor"], area_code=code, on_duty=True, locale="zh_CN", created_at=now))
    _, token = create_key(ctx, name="bench", scopes=["intake"], rate_per_minute=10**9)
    engine.dispose()
    return token, [(point.y, point.x) for _, point in grids]
