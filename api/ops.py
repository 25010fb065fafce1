"""Operations endpoints: /health (as before), /health/live and /health/ready for orchestrators, /metrics.

- `/health/live` answers 200 while the process can answer at all (a liveness probe restarts it otherwise).
- `/health/ready` answers 200 only when the store answers, its schema is at the code's Alembic head,
  the scheduler runs and, when a bot is configured, its update loop and sender run; otherwise 503
  with the failed checks and what to do (a readiness probe takes the instance out of rotation).
- `/metrics` is the Prometheus text; with ONEGRID_METRICS_TOKEN it needs `Authorization: Bearer`,
  with ONEGRID_METRICS_BIND it is not on the API at all (served on the internal bind instead).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.health import readiness, store_health

if TYPE_CHECKING:
    from onegrid.app import OneGrid


def build_router(app: OneGrid, registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/health", summary="Database, scheduler and delivery status")
    def health() -> JSONResponse:
        body: dict[str, Any] = {
            "database": store_health(app.ctx),
            "scheduler": app.scheduler_status(),
            "bot": app.bot_status(),
        }
        ok = body["database"]["ok"] and body["scheduler"]["running"]
        body["status"] = "ok" if ok else "degraded"
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/health/live", summary="Liveness: the process answers")
    async def live() -> JSONResponse:
        return JSONResponse({"status": "alive"})

    @router.get("/health/ready", summary="Readiness: store, schema at head, scheduler, bot when configured",
                responses={503: {"description": "Not ready; `problems` says what is wrong and what to do"}})
    def ready() -> JSONResponse:
        checks = readiness(app.ctx, engine=app.engine)
        checks["scheduler"] = {"ok": bool(app.scheduler.running)}
        checks["bot"] = app.bot_readiness()
        problems = [check["problem"] for check in checks.values() if not check["ok"] and check.get("problem")]
        problems += [f"{name} is not running" for name, check in checks.items()
                     if not check["ok"] and not check.get("problem")]
        ok = all(check["ok"] for check in checks.values())
        body = {"status": "ready" if ok else "not ready", "checks": checks, "problems": problems}
        return JSONResponse(body, status_code=200 if ok else 503)

    if app.settings.metrics_bind:
        return router  # /metrics lives on the internal bind only (onegrid/app.py serve)

    @router.get("/metrics", summary="Prometheus metrics (text format)",
                responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Metrics"},
                           401: {"description": "ONEGRID_METRICS_TOKEN is set and the bearer token is missing or wrong"}})
    async def metrics(request: Request) -> Response:
        token = app.settings.metrics_token
        if token is not None and not _bearer_matches(request.headers.get("authorization", ""),
                                                     token.get_secret_value()):
            return JSONResponse({"detail": "send Authorization: Bearer <ONEGRID_METRICS_TOKEN>",
                                 "code": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


def _bearer_matches(header: str, expected: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected.encode())
