"""Open311 GeoReport v2 routes under /open311/v2 (formats and parsing in api/open311.py).

Key problems answer 403 (429 for the rate limit), as Open311 clients expect; a request outside the
key's area answers 404 exactly like one that does not exist. Reads need no key (GeoReport v2 defines
them so) unless OPEN311_PUBLIC_READS is off: without a key, or with one lacking `read`, a read serves
the public view of every area, rate-limited per client address; a `read` key serves its area, masked
unless it also has `pii`. POST always needs a key with `write`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from fastapi.security import APIKeyQuery

from api.deps import ApiError, CtxDep, principal_for
from api.open311 import (
    ERRORS,
    PREFIX,
    Fmt,
    Open311Error,
    check_jurisdiction,
    definition_of,
    flag,
    locale_of,
    number,
    ok_doc,
    render,
    render_requests,
    request_query,
    service_of,
    stamp,
)
from models.api import Scope
from services import intake, open311_queries, privacy
from services.api_keys import Principal
from services.api_views import NotVisible
from services.cases import OutsideGrid, UnknownCategory
from services.context import ServiceContext

api_key_query = APIKeyQuery(name="api_key", auto_error=False, scheme_name="Open311ApiKey",
                            description="Open311 `api_key` (query, or form field on POST)")
Str = Annotated[str | None, Query()]
FStr = Annotated[str | None, Form()]
QueryKey = Annotated[str | None, Depends(api_key_query)]
FIELD_LIMITS = {"address_string": 500, "address_id": 200, "email": 200, "first_name": 100, "last_name": 100,
                "phone": 50, "device_id": 200, "account_id": 200}


async def open311_key(request: Request, ctx: ServiceContext, token: str | None, scope: Scope | None) -> Principal:
    try:
        principal = await principal_for(request, ctx, token)
    except ApiError as exc:
        code = 429 if exc.status == 429 else 403  # Open311 answers key problems with 403
        raise Open311Error(code, exc.message, exc.headers if exc.status == 429 else None) from None
    if scope is not None and not principal.allows(scope):
        raise Open311Error(403, f"this api_key lacks the {scope.value!r} scope")
    return principal


async def open311_reader(request: Request, ctx: ServiceContext, token: str | None) -> Principal | None:
    """The key of a read, or None for the public view (no key, or a key without `read`)."""
    public = ctx.settings.open311_public_reads
    if token or not public:
        principal = await open311_key(request, ctx, token, Scope.READ if not public else None)
        return principal if principal.allows(Scope.READ) else None
    client = request.client.host if request.client else "unknown"
    retry_after = request.app.state.rate_limiter.check(f"public:{client}", ctx.settings.api_default_rate_per_minute,
                                                       ctx.clock.now())
    if retry_after:
        raise Open311Error(429, "too many requests from this address", {"Retry-After": str(int(retry_after))})
    return None


def audience_of(principal: Principal | None) -> privacy.Audience:
    if principal is None:
        return privacy.Audience.PUBLIC
    return privacy.Audience.PII if principal.allows(Scope.PII) else privacy.Audience.AREA


def attributes_of(form: Any) -> dict[str, Any]:
    """`attribute[code]=v` and `attribute[code][]=v` form fields, by code."""
    attributes: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name.startswith("attribute[") and name.endswith("]"):
            code = name[len("attribute["):].rstrip("]").removesuffix("][")
            if name.endswith("[]"):
                attributes.setdefault(code, []).append(str(value))
            else:
                attributes[code] = str(value)
    return attributes


router = APIRouter(prefix=PREFIX, tags=["open311"], responses=ERRORS)


@router.get("/services.{fmt}", summary="Service list (the category catalogue)",
            responses=ok_doc("Services (services.json schema)"))
def services(request: Request, fmt: Fmt, ctx: CtxDep, jurisdiction_id: Str = None, locale: Str = None) -> Response:
    check_jurisdiction(ctx, jurisdiction_id)
    lang = locale_of(request, locale, ctx.settings.default_locale)
    data = [service_of(e.category, lang, e.has_questions) for e in open311_queries.list_services(ctx)]
    return render(fmt, data, root="services", item="service")


@router.get("/services/{service_code}.{fmt}", summary="Service definition (the category's questions)",
            responses=ok_doc("Service definition (service-definition.json schema)"))
def service_definition(service_code: str, fmt: Fmt, ctx: CtxDep, jurisdiction_id: Str = None) -> Response:
    check_jurisdiction(ctx, jurisdiction_id)
    try:
        category, questions = open311_queries.service_definition(ctx, service_code=service_code)
    except NotVisible:
        raise Open311Error(404, f"unknown service_code {service_code[:64]!r}") from None
    return render(fmt, definition_of(category, questions), root="service_definition")


@router.post("/requests.{fmt}", summary="Create a service request (form-encoded)",
             responses=ok_doc("[{service_request_id, service_notice, account_id}]"))
async def create_request(
    request: Request, fmt: Fmt, ctx: CtxDep,
    service_code: Annotated[str, Form(max_length=64)],
    lat: Annotated[float, Form(ge=-90, le=90, description="WGS84 latitude (this server needs lat/long)")],
    long: Annotated[float, Form(ge=-180, le=180, description="WGS84 longitude")],
    api_key: FStr = None, jurisdiction_id: FStr = None, address_string: FStr = None, address_id: FStr = None, email: FStr = None,
    device_id: FStr = None, account_id: FStr = None, first_name: FStr = None, last_name: FStr = None,
    phone: FStr = None, description: FStr = None, media_url: FStr = None,
    query_key: QueryKey = None,
) -> Response:
    principal = await open311_key(request, ctx, api_key or query_key, Scope.WRITE)
    check_jurisdiction(ctx, jurisdiction_id)
    attributes = attributes_of(await request.form())
    latitude, longitude = number("lat", str(lat), -90, 90), number("long", str(long), -180, 180)
    if description and len(description) > 4000:
        raise Open311Error(400, "description is limited to 4000 characters")
    if media_url and (len(media_url) > 2000 or not media_url.startswith(("http://", "https://"))):
        raise Open311Error(400, "media_url must be an http(s) URL")
    values = {"address_string": address_string, "address_id": address_id, "email": email,
              "first_name": first_name, "last_name": last_name, "phone": phone, "device_id": device_id,
              "account_id": account_id}
    for name, limit in FIELD_LIMITS.items():
        if values[name] is not None and len(values[name]) > limit:
            raise Open311Error(400, f"{name} is limited to {limit} characters")
    service_request = intake.ServiceRequest(
        service_code=service_code, lat=latitude, lon=longitude, description=description or "",
        media_url=media_url or None, attributes=attributes, **{k: (v or None) for k, v in values.items()})
    try:
        case = await asyncio.to_thread(intake.submit_service_request, ctx, principal=principal,
                                       request=service_request)
    except UnknownCategory:
        raise Open311Error(400, f"unknown service_code {service_code[:64]!r}") from None
    except OutsideGrid:
        raise Open311Error(400, "the location lies outside every grid of this jurisdiction") from None
    except intake.OutsideArea:
        raise Open311Error(403, "the location lies outside this api_key's area") from None
    except intake.BadAttributes as exc:
        raise Open311Error(400, str(exc)) from None
    due = stamp(case.handle_due_at, ZoneInfo(ctx.timezone))
    notice = f"Registered as {case.number}" + (f"; expected to be handled by {due}" if due else "")
    data = [{"service_request_id": case.number, "service_notice": notice}]
    if account_id:
        data[0]["account_id"] = account_id
    return render(fmt, data, root="service_requests", item="request")


@router.get("/requests.{fmt}", summary="Service requests (default: the last 90 days, newest first)",
            responses=ok_doc("Requests (requests.json schema)"))
async def list_requests(
    request: Request, fmt: Fmt, ctx: CtxDep, query_key: QueryKey = None,
    jurisdiction_id: Str = None, service_request_id: Str = None, service_code: Str = None,
    start_date: Str = None, end_date: Str = None, status: Str = None, extensions: Str = None,
    updated_after: Str = None, updated_before: Str = None, locale: Str = None,
) -> Response:
    principal = await open311_reader(request, ctx, query_key)
    check_jurisdiction(ctx, jurisdiction_id)
    query = request_query(ctx, {
        "service_request_id": service_request_id, "service_code": service_code, "start_date": start_date,
        "end_date": end_date, "status": status, "updated_after": updated_after, "updated_before": updated_before})
    lang = locale_of(request, locale, ctx.settings.default_locale)
    try:
        records = await asyncio.to_thread(open311_queries.find_requests, ctx, principal=principal, query=query)
    except NotVisible:
        raise Open311Error(404, "no such service request") from None
    data = render_requests(records, locale=lang, timezone=ctx.timezone, extensions=flag(extensions),
                           audience=audience_of(principal))
    return render(fmt, data, root="service_requests", item="request")


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request",
            responses=ok_doc("A one-element requests array (requests.json schema)"))
async def read_request(
    request: Request, service_request_id: str, fmt: Fmt, ctx: CtxDep, query_key: QueryKey = None,
    jurisdiction_id: Str = None, extensions: Str = None, locale: Str = None,
) -> Response:
    principal = await open311_reader(request, ctx, query_key)
    check_jurisdiction(ctx, jurisdiction_id)
    lang = locale_of(request, locale, ctx.settings.default_locale)
    try:
        record = await asyncio.to_thread(open311_queries.read_request, ctx, principal=principal,
                                         number=service_request_id)
    except NotVisible:
        raise Open311Error(404, "no such service request") from None
    data = render_requests([record], locale=lang, timezone=ctx.timezone, extensions=flag(extensions),
                           audience=audience_of(principal))
    return render(fmt, data, root="service_requests", item="request")
