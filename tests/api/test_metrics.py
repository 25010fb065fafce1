"""/metrics in Prometheus text format, read back with prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from onegrid.app import build, start_metrics_server
from tests.api.conftest import api_settings, client_for
from tests.api.test_serve import free_port


async def test_metrics_report_cases_queues_outbox_and_latency(api) -> None:
    await api.intake("street_a", event="m1")
    await api.intake("street_a", event="m2", device="cam-2")
    api.clock.advance(seconds=90)
    r = await api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(r.text) for s in family.samples}
    assert samples[("onegrid_cases", (("status", "registered"),))] == 2
    assert samples[("onegrid_outbox_events", (("status", "pending"),))] == 4
    assert samples[("onegrid_outbox_oldest_pending_age_seconds", ())] == 90
    assert samples[("onegrid_store_up", ())] == 1
    latency = [k for k in samples if k[0] == "onegrid_http_request_duration_seconds_count"
               and ("route", "/api/v1/cases") in k[1] and ("status", "201") in k[1]]
    assert latency and samples[latency[0]] == 2


async def test_made_up_methods_and_paths_do_not_grow_metrics(api) -> None:
    """Issue 13 item 2: 2,000 requests with invented methods and paths add no series to /metrics."""
    await api.client.request("BREW", "/made-up/warm-up")  # the one "other" series exists from here on
    await api.client.get("/metrics")
    before = await api.client.get("/metrics")
    for i in range(2000):
        await api.client.request(f"M{i}X", f"/made-up/{i}/{'z' * (i % 40)}")
    after = await api.client.get("/metrics")
    assert len(after.content) < 1.2 * len(before.content), (len(before.content), len(after.content))
    latency = [s for family in text_string_to_metric_families(after.text) for s in family.samples
               if s.name == "onegrid_http_request_duration_seconds_count"]
    assert {s.labels["method"] for s in latency} <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
                                                     "other"}
    assert not any(s.labels["route"].startswith("/made-up") for s in latency)
    others = [s for s in latency if s.labels["method"] == "other" and s.labels["route"] == "other"]
    assert sum(s.value for s in others) == 2001


async def test_metrics_behind_a_token(db, clock, tmp_path) -> None:
    app = build(api_settings(db.url, tmp_path, metrics_token="scrape-secret-42"), clock=clock)
    async with client_for(app) as client:
        none = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-42"})
    app.engine.dispose()
    assert none.status_code == 401 and wrong.status_code == 401
    assert none.headers["WWW-Authenticate"] == "Bearer" and "ONEGRID_METRICS_TOKEN" in none.json()["detail"]
    assert right.status_code == 200 and "onegrid_store_up 1.0" in right.text


async def test_metrics_on_an_internal_bind_are_not_on_the_api(db, clock, tmp_path) -> None:
    app = build(api_settings(db.url, tmp_path, metrics_bind="127.0.0.1:9464"), clock=clock)
    async with client_for(app) as client:
        response = await client.get("/metrics")
    app.engine.dispose()
    assert response.status_code == 404


async def test_metrics_on_the_internal_bind_answer_there(db, clock, tmp_path) -> None:
    port = free_port()
    app = build(api_settings(db.url, tmp_path, metrics_bind=f"127.0.0.1:{port}"), clock=clock)
    server = start_metrics_server(app)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    finally:
        server.shutdown()
        app.engine.dispose()
    assert response.status_code == 200 and "onegrid_store_up 1.0" in response.text
