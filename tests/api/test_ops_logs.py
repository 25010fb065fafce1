"""The log of a real `onegrid serve`, read as an operator's log shipper reads it: one JSON object per line.

The process runs with stderr on a pipe (not a terminal), so the log is JSON without any setting. A
machine intake request with a key and a phone number in its description, and an Open311 read with
the key in its query string, must leave lines that carry the request id (also returned as
X-Request-ID) and the case number, and nowhere the key, its secret or the phone number.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from onegrid.app import build
from services.api_keys import create_key
from tests.api.conftest import STREET_A, api_settings, prepare_store
from tests.api.test_serve import free_port

CMD = [sys.executable, "-m", "onegrid.cli"]
PHONE = "13812345678"


def _serve(db_url: str, data_dir, port: int) -> subprocess.Popen:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEGRID_")}
    env.update(ONEGRID_DATABASE_URL=db_url, ONEGRID_DATA_DIR=str(data_dir), ONEGRID_API_PORT=str(port),
               ONEGRID_SANDBOX="off")
    return subprocess.Popen([*CMD, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_ready(proc: subprocess.Popen, base: str) -> bool:
    deadline = time.monotonic() + 240  # a loaded two-core CI machine starts it slowly
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/health/ready", timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a starting process, not waiting for time to pass
    return False


@pytest.mark.slow
def test_the_json_log_of_a_request_has_its_id_and_case_number_and_no_key(db, clock, tmp_path, demo_map) -> None:
    app = build(api_settings(db.url, tmp_path), clock=clock)
    prepare_store(app, demo_map)
    _, token = create_key(app.ctx, name="camera platform", scopes=["read", "write", "intake"], area_code=STREET_A)
    app.engine.dispose()
    lat, lon = demo_map.points[STREET_A][0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(db.url, tmp_path / "serve", port)
    created = read = None
    try:
        if _wait_until_ready(proc, base):
            created = httpx.post(f"{base}/api/v1/cases", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                 json={"source": "camera", "source_event_id": "ev-1", "device_id": "cam-7",
                                       "category_code": "exposed_garbage", "lat": lat, "lon": lon,
                                       "description": f"garbage, call {PHONE}"})
            read = httpx.get(f"{base}/open311/v2/requests.json", params={"api_key": token}, timeout=30,
                             headers={"X-Request-ID": "lb-req-0001-abcdef"})
    finally:
        proc.send_signal(signal.SIGINT)
        _, log = proc.communicate(timeout=60)
    assert created is not None and read is not None, f"onegrid serve did not become ready:\n{log[-3000:]}"
    assert created.status_code == 201, created.text
    number, request_id = created.json()["case"]["number"], created.headers["X-Request-ID"]
    assert uuid.UUID(request_id).version == 4 and uuid.UUID(request_id).hex == request_id  # made here: a UUID4
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is a JSON object

    of_request = [line for line in lines if line.get("request_id") == request_id]
    assert any(line.get("case") == number for line in of_request), of_request
    assert any(line["logger"] == "uvicorn.access" and "POST /api/v1/cases" in line["event"] for line in of_request)
    # An incoming request id is kept, answered, and put on the access line with the query string scrubbed.
    assert read.headers["X-Request-ID"] == "lb-req-0001-abcdef"
    access = [line for line in lines if line.get("request_id") == "lb-req-0001-abcdef"
              and line["logger"] == "uvicorn.access"]
    assert access and "api_key=[redacted]" in access[0]["event"]
    secret = token.rsplit("_", 1)[1]
    assert token not in log and secret not in log and PHONE not in log
