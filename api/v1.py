"""The management and machine API under /api/v1: one router per resource (api/routes/), joined here.

Every route parses, checks the key (scope and area), calls one service, renders. A case (person,
area, invitation) outside the key's area answers 404 exactly like one that does not exist, and
nothing changes.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ERROR_RESPONSES
from api.routes import (areas, campaigns, cases, categories, elders, exports, invitations, keys, kpis, people, sync,
                        warnings)


def build_router() -> APIRouter:
    # The resource routers carry the prefix themselves: the latency metric labels a request by its route's path.
    router = APIRouter(responses=ERROR_RESPONSES)
    for resource in (keys, cases, exports, areas, categories, sync, kpis, people, invitations, elders, warnings,
                     campaigns):
        router.include_router(resource.router)
    return router
