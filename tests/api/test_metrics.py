"""/metrics in Prometheus text format, read back with prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


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
