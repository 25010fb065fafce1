"""`onegrid setup` + `onegrid serve` as `make run` does them, on a fresh data directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from onegrid.app import store_threads
from onegrid.cli import cli
from onegrid.settings import Settings
from services.db import make_engine

CMD = [sys.executable, "-m", "onegrid.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEGRID_")}
    env.update(ONEGRID_DATA_DIR=str(tmp_path / "var"), ONEGRID_API_PORT=str(free_port()))
    return env


def test_help_lists_every_command() -> None:
    out = subprocess.run([*CMD, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "migrate", "setup", "grids", "categories"):
        assert command in out
    names = {c.name or c.callback.__name__ for c in cli.registered_commands}
    assert names <= set(out.replace("│", " ").split())


@pytest.mark.slow
def test_setup_then_serve_answers_health(env, tmp_path) -> None:
    setup = subprocess.run([*CMD, "setup"], env=env, capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    assert "1980" in setup.stdout or "1,980" in setup.stdout  # the demo map's grids were loaded
    again = subprocess.run([*CMD, "setup"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "demo map" not in again.stdout  # a second run loads nothing twice

    proc = subprocess.Popen([*CMD, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{env['ONEGRID_API_PORT']}/health"
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(url, timeout=2)
                body = response.json()
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling a starting process, not waiting for time to pass
        assert body is not None and body["status"] == "ok", body
        assert body["database"]["backend"] == "sqlite" and body["scheduler"]["running"]
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "ONEGRID_BOT_TOKEN" in output  # the log says how to turn the bot on
    assert (tmp_path / "var" / "onegrid.sqlite3").exists()


@pytest.mark.slow
def test_serve_at_log_level_warning_logs_no_request_lines(env, tmp_path) -> None:
    """An operator who sets ONEGRID_LOG_LEVEL=WARNING gets no access line per request (uvicorn's own
    loggers follow the setting), while INFO, the default, logs each request."""
    migrate = subprocess.run([*CMD, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    outputs = {}
    for level in ("WARNING", "INFO"):
        proc = subprocess.Popen([*CMD, "serve"], env={**env, "ONEGRID_LOG_LEVEL": level},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{env['ONEGRID_API_PORT']}/health"
        try:
            deadline, answered = time.monotonic() + 60, 0
            while time.monotonic() < deadline and proc.poll() is None and answered < 3:
                try:
                    answered += httpx.get(url, timeout=2).status_code in (200, 503)
                except httpx.TransportError:
                    time.sleep(0.2)  # polling a starting process, not waiting for time to pass
            assert answered == 3
        finally:
            proc.send_signal(signal.SIGINT)
            outputs[level], _ = proc.communicate(timeout=30)
    assert "GET /health" not in outputs["WARNING"], outputs["WARNING"][-2000:]
    assert "GET /health" in outputs["INFO"], outputs["INFO"][-2000:]


def test_store_work_runs_in_few_threads_unless_the_setting_says_otherwise(tmp_path) -> None:
    """SQLite's writers take turns, so more threads only contend; PostgreSQL's waits on the network use a few."""
    sqlite = make_engine(f"sqlite:///{tmp_path / 'threads.sqlite3'}")
    postgres = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    assert store_threads(Settings(_env_file=None), sqlite) == 2
    assert store_threads(Settings(_env_file=None), postgres) == 4
    assert store_threads(Settings(_env_file=None, store_threads=6), sqlite) == 6
