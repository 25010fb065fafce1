"""/health and /docs as an operator sees them, on the app built by the real factory."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

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


async def test_liveness_and_readiness_for_an_orchestrator(db, clock, tmp_path) -> None:
    app = build(Settings(_env_file=None, database_url=db.url, data_dir=tmp_path, sandbox="off"), clock=clock)
    async with client_for(app) as client:
        live = await client.get("/health/live")
        starting = await client.get("/health/ready")
        await start_background(app)
        try:
            ready = await client.get("/health/ready")
        finally:
            await stop_background(app)
    app.engine.dispose()
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    assert starting.status_code == 503 and starting.json()["status"] == "not ready"
    assert starting.json()["checks"]["scheduler"] == {"ok": False}
    assert "scheduler is not running" in starting.json()["problems"]
    assert ready.status_code == 200 and ready.json()["problems"] == []
    checks = ready.json()["checks"]
    assert checks["store"]["ok"] and checks["schema"]["ok"] and checks["schema"]["current"] == checks["schema"]["head"]
    assert checks["bot"] == {"ok": True, "required": False}  # no bot configured: not needed to be ready


async def test_a_schema_behind_the_code_is_not_ready(db, clock, tmp_path) -> None:
    app = build(Settings(_env_file=None, database_url=db.url, data_dir=tmp_path, sandbox="off"), clock=clock)
    with db.engine.begin() as conn:
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0009'"))
    try:
        async with client_for(app) as client:
            await start_background(app)
            try:
                response = await client.get("/health/ready")
                live = await client.get("/health/live")
            finally:
                await stop_background(app)
    finally:
        with db.engine.begin() as conn:  # the PostgreSQL database is shared by this worker's next tests
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        app.engine.dispose()
    assert live.status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["schema"]["ok"] is False and body["checks"]["schema"]["current"] == ["0009"]
    assert body["checks"]["store"]["ok"] is True
    assert any("onegrid migrate" in problem for problem in body["problems"])


async def test_a_configured_bot_that_is_not_running_is_not_ready(db, clock, tmp_path) -> None:
    app = build(Settings(_env_file=None, database_url=db.url, data_dir=tmp_path, sandbox="off",
                         bot_token="123456:TEST-token-not-used-by-this-test-xxxxxxxx"), clock=clock)
    app.scheduler.start(paused=True)  # everything else is up: only the bot's loops are missing
    try:
        async with client_for(app) as client:
            response = await client.get("/health/ready")
    finally:
        app.scheduler.shutdown(wait=False)
        await app.bot.session.close()
        app.engine.dispose()
    assert response.status_code == 503
    bot = response.json()["checks"]["bot"]
    assert bot["ok"] is False and bot["required"] is True and "telegram-polling" in bot["problem"]
