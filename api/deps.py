"""Request dependencies as `Annotated[..., Depends()]` aliases: the container, the services' context, the caller's key.

Authentication answers 401 (no or bad key, with WWW-Authenticate), scopes 403, the per-key rate
limit 429 with Retry-After. Errors are raised as `ApiError`, rendered by api/app.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from models.api import Scope
from services.api_keys import Principal, RateLimiter, authenticate, recently_authenticated
from services.api_views import BadCursor, BadFilter, NotVisible
from services.context import ServiceContext

if TYPE_CHECKING:
    from onegrid.app import OneGrid


V1_PREFIX = "/api/v1"


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine-readable code, a message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def not_found(what: str = "not found") -> ApiError:
    return ApiError(404, "not_found", what)


# Async though they never wait: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
async def get_onegrid(request: Request) -> OneGrid:
    return request.app.state.onegrid


async def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.onegrid.ctx


OneGridDep = Annotated[Any, Depends(get_onegrid)]
CtxDep = Annotated[ServiceContext, Depends(get_ctx)]


bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey",
    description="`Authorization: Bearer og_<key_id>_<secret>`; keys are made with `onegrid apikey create`.",
)


async def principal_for(request: Request, ctx: ServiceContext, token: str | None) -> Principal:
    if not token:
        raise ApiError(401, "unauthenticated", "an API key is required", {"WWW-Authenticate": "Bearer"})
    principal = recently_authenticated(ctx, token=token) or await asyncio.to_thread(authenticate, ctx, token=token)
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
    take_turn(request.app.state.rate_limiter, ctx, principal)
    return principal


def take_turn(limiter: RateLimiter, ctx: ServiceContext, principal: Principal) -> None:
    """Spend one request of the key's rate limit; ApiError 429 with Retry-After when there is none left."""
    retry_after = limiter.check(principal.id, principal.rate_per_minute, ctx.clock.now())
    if retry_after:
        raise ApiError(429, "rate_limited", "too many requests for this key",
                       {"Retry-After": str(int(retry_after))})


def check_scope(principal: Principal, scope: Scope) -> None:
    if not principal.allows(scope):
        raise ApiError(403, "forbidden", f"this key lacks the {scope.value!r} scope")


async def current_key(
    request: Request, ctx: CtxDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    return await principal_for(request, ctx, credentials.credentials if credentials else None)


CurrentKey = Annotated[Principal, Depends(current_key)]


def require(scope: Scope) -> Callable[..., Any]:
    async def dependency(principal: CurrentKey) -> Principal:
        check_scope(principal, scope)
        return principal

    dependency.__name__ = f"require_{scope.value}"
    return dependency


ReadKey = Annotated[Principal, Depends(require(Scope.READ))]
WriteKey = Annotated[Principal, Depends(require(Scope.WRITE))]
IntakeKey = Annotated[Principal, Depends(require(Scope.INTAKE))]
AdminKey = Annotated[Principal, Depends(require(Scope.ADMIN))]

# Answers every authenticated route may give; documented so clients (and schemathesis) know them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No, unknown or revoked API key"},
    403: {"description": "The key lacks the scope"},
    413: {"description": "Body too large"},
    422: {"description": "Invalid request"},
    429: {"description": "Rate limit of the key reached; see Retry-After"},
}


def error_response(exc: ApiError) -> JSONResponse:
    """The JSON answer for an ApiError: `{"detail": message, "code": code}`."""
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers)


def refusal(exc: NotVisible | BadCursor | BadFilter) -> ApiError:
    """The answer to a read service's refusal: 404 for what the key may not see, 422 for a bad cursor or filter."""
    if isinstance(exc, NotVisible):
        return not_found(f"no such {exc.what}")
    if isinstance(exc, BadCursor):
        return ApiError(422, "bad_cursor", "cursor is not one this API gave out")
    return ApiError(422, "bad_filter", f"unknown {exc.field} {exc.value!r}")


REFUSALS = (NotVisible, BadCursor, BadFilter)
