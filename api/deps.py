"""Request dependencies as `Annotated[..., Depends()]` aliases: the container, a session, the caller's key.

Authentication answers 401 (no or bad key, with WWW-Authenticate), scopes 403, the per-key rate
limit 429 with Retry-After. Errors are raised as `ApiError`, rendered by api/app.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from models.api import Scope
from services.api_keys import Principal, authenticate
from services.context import ServiceContext

if TYPE_CHECKING:
    from onegrid.app import OneGrid


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine-readable code, a message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def not_found(what: str = "not found") -> ApiError:
    return ApiError(404, "not_found", what)


def get_onegrid(request: Request) -> OneGrid:
    return request.app.state.onegrid


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.onegrid.ctx


OneGridDep = Annotated[Any, Depends(get_onegrid)]
CtxDep = Annotated[ServiceContext, Depends(get_ctx)]


def get_session(ctx: CtxDep) -> Iterator[Session]:
    """A read session for the request; writes go through services, which own their transactions."""
    with ctx.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey",
    description="`Authorization: Bearer og_<key_id>_<secret>`; keys are made with `onegrid apikey create`.",
)


async def _principal_for(request: Request, ctx: ServiceContext, token: str | None) -> Principal:
    if not token:
        raise ApiError(401, "unauthenticated", "an API key is required", {"WWW-Authenticate": "Bearer"})
    principal = await asyncio.to_thread(authenticate, ctx, token=token)
    if principal is None:
        raise ApiError(401, "unauthenticated", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
    retry_after = request.app.state.rate_limiter.check(principal.id, principal.rate_per_minute, ctx.clock.now())
    if retry_after:
        raise ApiError(429, "rate_limited", "too many requests for this key",
                       {"Retry-After": str(int(retry_after))})
    request.state.principal = principal
    return principal


async def current_key(
    request: Request, ctx: CtxDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    return await _principal_for(request, ctx, credentials.credentials if credentials else None)


CurrentKey = Annotated[Principal, Depends(current_key)]


def require(scope: Scope) -> Callable[..., Any]:
    async def dependency(principal: CurrentKey) -> Principal:
        if not principal.allows(scope):
            raise ApiError(403, "forbidden", f"this key lacks the {scope.value!r} scope")
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


def error_response(exc: ApiError) -> Any:
    """The JSON answer for an ApiError: `{"detail": message, "code": code}`."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers)
