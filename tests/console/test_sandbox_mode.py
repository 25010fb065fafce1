"""When sandbox mode runs, and when it refuses to: tokens, the off switch, non-loopback addresses."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sandbox import SandboxRefused, is_loopback_host
from onegrid.app import build, start_background, stop_background
from onegrid.clock import SystemClock
from onegrid.settings import Settings
from services.db import make_engine, make_session_factory, upgrade
from tests.console.conftest import free_port, sandbox_settings, seed_store

CMD = [sys.executable, "-m", "onegrid.cli"]


def asgi_client(app) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api), base_url="http://127.0.0.1")


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_loopback_exactly_when_it_is_in_127_0_0_0_8(address: ipaddress.IPv4Address) -> None:
    assert is_loopback_host(str(address)) == (address in ipaddress.ip_network("127.0.0.0/8"))


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("no-such-host.invalid", False),
])
def test_loopback_names(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


async def test_with_a_token_there_is_no_sandbox_and_no_console(tmp_path: Path) -> None:
    app = build(Settings(_env_file=None, data_dir=tmp_path, bot_token="123456:REAL"))
    async with asgi_client(app) as client:
        page = await client.get("/console")
        api = await client.get("/console/api/session")
    assert app.sandbox is None
    assert page.status_code == api.status_code == 404
    assert not any(getattr(r, "path", "").startswith("/console") for r in app.api.routes)
    await app.bot.session.close()


async def test_sandbox_off_leaves_the_bot_off(tmp_path: Path, db, clock) -> None:
    app = build(Settings(_env_file=None, data_dir=tmp_path, database_url=db.url, sandbox="off"), clock=clock)
    await start_background(app)
    try:
        async with asgi_client(app) as client:
            page = await client.get("/console")
            health = (await client.get("/health")).json()
    finally:
        await stop_background(app)
    assert app.sandbox is None and app.bot is None and page.status_code == 404
    assert health["bot"] == {"enabled": False, "hint": "set ONEGRID_BOT_TOKEN to enable the Telegram bot"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
async def test_a_non_loopback_address_is_refused_before_anything_starts(host: str, tmp_path: Path, db, clock) -> None:
    app = build(sandbox_settings(db.url, tmp_path, api_host=host), clock=clock)
    with pytest.raises(SandboxRefused, match="ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX"):
        await start_background(app)
    assert not app.scheduler.running and not app.tasks and not app.sandbox.running
    assert app.sandbox.api_url == "http://127.0.0.1:9"  # the emulator never listened
    await stop_background(app)
    app.engine.dispose()


async def test_the_flag_allows_a_non_loopback_address_but_the_emulator_stays_on_loopback(tmp_path: Path, db,
                                                                                        clock) -> None:
    seed_store(db.sessions, clock)
    app = build(sandbox_settings(db.url, tmp_path, api_host="0.0.0.0", allow_non_loopback_sandbox=True),
                clock=clock)
    await start_background(app, polling_timeout=1)
    try:
        assert app.sandbox.running and app.sandbox.api_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api),
                                     base_url="http://onegrid.lan:8000") as client:
            session = await client.get("/console/api/session")  # the operator chose to serve this name
        assert session.status_code == 200
    finally:
        await stop_background(app)
        app.engine.dispose()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEGRID_")}
    env.update(ONEGRID_DATA_DIR=str(tmp_path / "var"), ONEGRID_API_PORT=str(free_port()), **extra)
    return env


def test_serve_refuses_a_public_address_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run([*CMD, "serve"], env=_env(tmp_path, ONEGRID_API_HOST="0.0.0.0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Sandbox mode refuses to listen on 0.0.0.0" in result.stderr
    assert "ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_prints_the_console_address_and_serves_the_demo(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'onegrid.sqlite3'}"
    (tmp_path / "var").mkdir()
    upgrade(url)
    engine = make_engine(url)
    seed_store(make_session_factory(engine), SystemClock())
    engine.dispose()
    env = _env(tmp_path)
    proc = subprocess.Popen([*CMD, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{env['ONEGRID_API_PORT']}"
    try:
        people = None
        for _ in range(300):  # polling a starting process, up to ~60 s
            try:
                response = httpx.get(f"{base}/console/api/session", timeout=2)
                if response.status_code == 200:
                    people = response.json()["people"]
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert people is not None and [p["key"] for p in people] == ["resident", "worker", "worker2", "supervisor"]
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"try OneGrid in your browser at {base}/console" in output
    # ...and again once the API accepts requests, so the address is not lost above uvicorn's lines
    assert output.rindex(f"Sandbox mode: try OneGrid in your browser at {base}/console") > output.index(
        "Uvicorn running")
