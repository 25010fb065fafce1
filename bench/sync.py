"""Upstream sync throughput: a district OneGrid relays its outbox to a city OneGrid on a loopback port.

Both instances run in this process (the city under uvicorn on 127.0.0.1), each on its own SQLite
store with the demo map and catalogue. The district registers `--cases` machine cases (each
writes 2 events: report, register) and dispatches a third of them; then the relay drains the
outbox. Prints events/s delivered (each applied through the city's lifecycle, once, in order) and
checks that both stores agree case by case.

    .venv/bin/python bench/sync.py --cases 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from sqlmodel import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.api import SyncLink  # noqa: E402
from models.lifecycle import Action, Actor, Role  # noqa: E402
from models.tables import Case, CaseEvent, OutboxItem, OutboxStatus  # noqa: E402
from onegrid.app import build  # noqa: E402
from onegrid.settings import Settings  # noqa: E402
from services.api_keys import create_key  # noqa: E402
from services.areas import import_geojson  # noqa: E402
from services.cases import apply_action  # noqa: E402
from services.catalogue import apply_catalogue, load_catalogue  # noqa: E402
from services.db import upgrade  # noqa: E402
from services.upstream import UpstreamRelay, make_client  # noqa: E402


def instance(folder: Path, doc: dict, **kw):  # noqa: ANN201
    folder.mkdir()
    url = f"sqlite:///{folder / 'store.sqlite3'}"
    upgrade(url)
    app = build(Settings(_env_file=None, database_url=url, data_dir=folder, api_default_rate_per_minute=10**9, **kw))
    import_geojson(app.ctx.sessions, doc, now=app.ctx.clock.now())
    apply_catalogue(app.ctx.sessions, load_catalogue())
    app.ctx.grid_map.rebuild(app.ctx.sessions)
    return app


def view(app, linked: bool) -> dict:  # noqa: ANN001
    with app.ctx.sessions() as s:
        if linked:
            rows = [(link.origin_number, case) for link, case in
                    s.exec(select(SyncLink, Case).join(Case, Case.id == SyncLink.case_id))]
        else:
            rows = [(c.number, c) for c in s.exec(select(Case))]
        return {n: (str(c.status), [str(a) for a in s.exec(select(CaseEvent.action).where(CaseEvent.case_id == c.id)
                                                           .order_by(CaseEvent.id))]) for n, c in rows}


async def main(cases: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="onegrid-sync-"))
    doc = json.loads((ROOT / "data" / "shanghai-demo-grids.geojson").read_text(encoding="utf-8"))
    city = instance(tmp / "city", doc, instance_id="city")
    district = instance(tmp / "district", doc, instance_id="huangpu")
    _, token = create_key(city.ctx, name="district", scopes=["intake"], area_code="SH-HP", rate_per_minute=10**9)
    _, intake_token = create_key(district.ctx, name="cams", scopes=["intake"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(city.api, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    from shapely.geometry import shape

    grids = [shape(f["geometry"]).representative_point() for f in doc["features"]
             if f["properties"]["level"] == "grid" and f["properties"]["code"].startswith("SH-HP-")]
    t0 = time.perf_counter()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=district.api), base_url="http://d") as client:
        ids = []
        for i in range(cases):
            p = grids[i % len(grids)]
            r = await client.post("/api/v1/cases", headers={"Authorization": f"Bearer {intake_token}"}, json={
                "source": "camera", "source_event_id": f"e{i}", "device_id": f"cam-{i}",
                "category_code": "exposed_garbage", "lat": p.y, "lon": p.x})
            ids.append(r.json()["case"]["id"])
    for case_id in ids[::3]:
        apply_action(district.ctx, case_id=case_id, action=Action.DISPATCH, actor=Actor(Role.DISPATCHER))
    made = time.perf_counter() - t0
    with district.ctx.sessions() as s:
        events = len(s.exec(select(OutboxItem.id)).all())
    relay = UpstreamRelay(district.ctx, make_client(district.settings), base_url=f"http://127.0.0.1:{port}",
                          api_key=token)
    t0 = time.perf_counter()
    while await relay.run_once():
        pass
    took = time.perf_counter() - t0
    await relay.client.aclose()
    server.should_exit = True
    await serving
    with district.ctx.sessions() as s:
        unsent = len(s.exec(select(OutboxItem.id).where(OutboxItem.status != OutboxStatus.SENT.value)).all())
    same = view(city, linked=True) == view(district, linked=False)
    print(f"{cases} cases, {events} events written in {made:.1f} s; relayed in {took:.1f} s = "
          f"{events / took:.0f} events/s to the loopback city; unsent {unsent}; stores agree: {same}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000)
    asyncio.run(main(parser.parse_args().cases))
