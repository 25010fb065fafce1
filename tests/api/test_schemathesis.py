"""Schemathesis over the whole OpenAPI schema, every check on, bounded examples.

Positive-data acceptance also accepts 400/422: see CONFIG below for why.

No 5xx, no response outside the documented statuses, content types and schemas, and auth is
never ignored (schemathesis drops the credentials and expects 401/403). Runs on SQLite with the
demo map and catalogue, as an admin key with every scope.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from onegrid.app import build, start_background, stop_background
from onegrid.clock import FakeClock
from services.api_keys import create_key
from tests.api.conftest import api_settings, prepare_store

ALL_CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.ignored_auth,
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
]


# A schema cannot say "a point inside the city's map" or "a category in the catalogue": schema-valid
# data may still break a business rule, which is answered 400 (Open311) or 422 (/api/v1) with the reason.
CONFIG = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]}}})


@pytest.fixture
async def api_schema(tmp_path, demo_map, sqlite_template):  # noqa: ANN201
    path = tmp_path / "onegrid.sqlite3"
    shutil.copy(sqlite_template, path)
    app = build(api_settings(f"sqlite:///{path}", tmp_path, api_default_rate_per_minute=1_000_000), clock=FakeClock())
    prepare_store(app, demo_map)
    _, token = create_key(app.ctx, name="schemathesis", scopes=["admin"])
    await start_background(app)  # /health answers 503 while the scheduler is stopped
    schema = schemathesis.openapi.from_asgi("/openapi.json", app.api, config=CONFIG)
    schema.onegrid_token = token
    yield schema
    await stop_background(app)
    app.engine.dispose()


async def test_every_operation_honours_its_schema(api_schema) -> None:
    token = api_schema.onegrid_token
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def run(case) -> None:
            if case.query is not None and "api_key" in case.query:
                case.query["api_key"] = token
            if operation.path == "/open311/v2/requests.{fmt}" and case.method == "POST" and isinstance(case.body, dict):
                case.body["api_key"] = token
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=ALL_CHECKS)

        await asyncio.to_thread(run)
