"""/health and /docs as an operator sees them, on the app built by the real factory."""

from __future__ import annotations

import httpx

from onegrid.app import build, start_background, stop_background
from onegrid.settings import Settings


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api), base_url="http://onegrid.test")


async def test_health_reports_database_and_scheduler(db, clock, tmp_path) -> None:
    # No token and the sandbox off: the bot is off (the sandbox's demo staff would have menus queued).
    app = build(Settings(_env_file=None, database_url=db.url, data_dir=tmp_path, sandbox="off"), clock=clock)
    async with client_for(app) as client:
        before = await client.get("/health")
        await start_background(app)
        try:
            after = await client.get("/health")
        finally:
            await stop_background(app)
    assert before.status_code == 503 and before.json()["scheduler"]["running"] is False
    assert after.status_code == 200
    body = after.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "backend": db.kind, "notifications_pending": 0}
    assert body["scheduler"]["running"] is True and "heartbeat" in body["scheduler"]["jobs"]
    assert body["bot"]["enabled"] is False and "ONEGRID_BOT_TOKEN" in body["bot"]["hint"]


async def test_health_says_when_the_database_is_down(clock, tmp_path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    app = build(Settings(_env_file=None, database_url=url, data_dir=tmp_path), clock=clock)
    async with client_for(app) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False
    assert "OperationalError" in response.json()["database"]["error"]


async def test_docs_and_openapi_are_served(tmp_path, clock) -> None:
    app = build(Settings(_env_file=None, data_dir=tmp_path), clock=clock)
    async with client_for(app) as client:
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
    assert spec.json()["info"]["title"] == "OneGrid" and "/health" in spec.json()["paths"]
