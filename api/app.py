"""The HTTP API. Built by `create_api(container)`; no module-level app or settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.health import store_health

if TYPE_CHECKING:
    from onegrid.app import OneGrid


def create_api(app: OneGrid) -> FastAPI:
    api = FastAPI(
        title="OneGrid",
        version="0.1.0",
        description="Case store API of OneGrid, the chat front end for city grid management.",
    )
    api.state.onegrid = app

    @api.get("/health", tags=["ops"], summary="Database, scheduler and delivery status")
    def health() -> JSONResponse:
        body: dict[str, Any] = {
            "database": store_health(app.ctx),
            "scheduler": app.scheduler_status(),
            "bot": app.bot_status(),
        }
        ok = body["database"]["ok"] and body["scheduler"]["running"]
        body["status"] = "ok" if ok else "degraded"
        return JSONResponse(body, status_code=200 if ok else 503)

    return api
