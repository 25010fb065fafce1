"""Open311 GeoReport v2 under /open311/v2, in JSON and XML, as the standard defines it.

Responses follow the JSON Schemas in api/open311_schemas/ (validated in tests). XML is produced
with xml.etree (escaping by the library, never by string concatenation); errors are the standard
array of ``{code, description}`` (400, 403, 404; 429 for the rate limit). OneGrid's statuses map
onto ``open``/``closed`` with ``status_notes``; with ``extensions=true`` each request also carries
the FixMyStreet-style ``extended_status`` and OneGrid's own fields.
"""

from __future__ import annotations

import asyncio
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyQuery
from sqlmodel import Session, select

from api.deps import ApiError, CtxDep, SessionDep, _principal_for
from models.api import CaseSubmission, Scope, SyncLink
from models.lifecycle import Status
from models.tables import Case, CaseEvent, Category, Department
from services import intake
from services.api_keys import Principal, case_in_scope, case_scope_clause
from services.cases import OutsideGrid, UnknownCategory
from services.context import ServiceContext

PREFIX = "/open311/v2"

CLOSED_STATUSES = frozenset({Status.CLOSED, Status.CANCELLED, Status.MERGED})

# FixMyStreet's Open311 extended status vocabulary.
EXTENDED_STATUS: dict[Status, str] = {
    Status.REPORTED: "OPEN",
    Status.REGISTERED: "OPEN",
    Status.DISPATCHED: "ACTION_SCHEDULED",
    Status.IN_PROGRESS: "IN_PROGRESS",
    Status.EXTENSION_REQUESTED: "IN_PROGRESS",
    Status.AWAITING_VERIFICATION: "INVESTIGATING",
    Status.REWORK: "IN_PROGRESS",
    Status.RETURNED: "INTERNAL_REFERRAL",
    Status.SHELVED: "ACTION_SCHEDULED",
    Status.CLOSED: "FIXED",
    Status.CANCELLED: "CLOSED",
    Status.MERGED: "DUPLICATE",
}

DEFAULT_NOTES: dict[Status, str] = {
    Status.REPORTED: "Reported; waiting to be registered.",
    Status.REGISTERED: "Registered; waiting for dispatch.",
    Status.DISPATCHED: "Dispatched to a grid worker.",
    Status.IN_PROGRESS: "A grid worker is handling it.",
    Status.EXTENSION_REQUESTED: "Being handled; more time was requested.",
    Status.AWAITING_VERIFICATION: "Handled; awaiting verification.",
    Status.REWORK: "Sent back for rework.",
    Status.RETURNED: "Returned to dispatch for reassignment.",
    Status.SHELVED: "Cannot be solved now; kept on record.",
    Status.CLOSED: "Fixed and verified.",
    Status.CANCELLED: "Closed without action.",
    Status.MERGED: "Duplicate of another request.",
}

api_key_query = APIKeyQuery(name="api_key", auto_error=False, scheme_name="Open311ApiKey",
                            description="Open311 `api_key` (query, or form field on POST)")


class Fmt(StrEnum):
    JSON = "json"
    XML = "xml"


ERRORS = {
    400: {"description": "Invalid parameters (Open311 error array)"},
    403: {"description": "Missing, unknown or under-privileged api_key (Open311 error array)"},
    404: {"description": "Not found (Open311 error array)"},
    413: {"description": "Body too large"},
    429: {"description": "Rate limit of the key reached; see Retry-After"},
}


def _ok_doc(description: str) -> dict[int | str, Any]:
    return {200: {"description": description, "content": {"application/json": {}, "application/xml": {}}}}


class Open311Error(Exception):
    def __init__(self, code: int, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.headers = code, description, headers or {}


def fmt_of(request: Request) -> Fmt:
    return Fmt.XML if request.url.path.endswith(".xml") else Fmt.JSON


# ---------------------------------------------------------------------------- rendering


def _xml_value(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if value is None:
        return
    if isinstance(value, bool):
        child.text = "true" if value else "false"
    elif isinstance(value, list):
        for item in value:
            _xml_value(child, "value", item) if not isinstance(item, dict) else _xml_dict(child, "value", item)
    elif isinstance(value, dict):
        for k, v in value.items():
            _xml_value(child, k, v)
    else:
        child.text = str(value)


def _xml_dict(parent: ET.Element, name: str, item: dict[str, Any]) -> ET.Element:
    el = ET.SubElement(parent, name)
    for key, value in item.items():
        _xml_value(el, key, value)
    return el


def to_xml(root: str, item_name: str, items: list[dict[str, Any]] | dict[str, Any]) -> bytes:
    top = ET.Element(root)
    if isinstance(items, dict):
        for key, value in items.items():
            if key == "attributes":
                attrs = ET.SubElement(top, "attributes")
                for attribute in value:
                    el = _xml_dict(attrs, "attribute", {k: v for k, v in attribute.items() if k != "values"})
                    values = ET.SubElement(el, "values")
                    for v in attribute.get("values", []):
                        _xml_dict(values, "value", v)
            else:
                _xml_value(top, key, value)
    else:
        for item in items:
            _xml_dict(top, item_name, item)
    return ET.tostring(top, encoding="utf-8", xml_declaration=True)


def render(fmt: Fmt, data: Any, *, root: str, item: str = "", status: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    if fmt is Fmt.XML:
        return Response(to_xml(root, item, data), status_code=status, media_type="application/xml",
                        headers=headers)
    return JSONResponse(data, status_code=status, headers=headers)


def error_response(fmt: Fmt, code: int, description: str, headers: dict[str, str] | None = None) -> Response:
    return render(fmt, [{"code": code, "description": description}], root="errors", item="error", status=code,
                  headers=headers)


def _stamp(when: datetime | None, tz: ZoneInfo) -> str | None:
    return when.astimezone(tz).isoformat(timespec="seconds") if when else None


def _locale(request: Request, explicit: str | None, default: str) -> str:
    wanted = explicit or request.headers.get("accept-language", "") or default
    return "en" if wanted.lower().startswith("en") else "zh_CN"


# ---------------------------------------------------------------------------- authentication


async def _key(request: Request, ctx: ServiceContext, token: str | None, scope: Scope) -> Principal:
    try:
        principal = await _principal_for(request, ctx, token)
    except ApiError as exc:
        code = 429 if exc.status == 429 else 403  # Open311 answers key problems with 403
        raise Open311Error(code, exc.message, exc.headers if exc.status == 429 else None) from None
    if not principal.allows(scope):
        raise Open311Error(403, f"this api_key lacks the {scope.value!r} scope")
    return principal


# ---------------------------------------------------------------------------- services


def service_of(category: Category, locale: str, has_questions: bool) -> dict[str, Any]:
    name = category.name_en if locale == "en" and category.name_en else category.name
    other = category.name if locale == "en" else category.name_en
    return {"service_code": category.code, "service_name": name, "description": other or None,
            "metadata": has_questions, "type": "realtime", "keywords": category.kind, "group": category.kind}


def definition_of(category: Category, questions: list[Any]) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "attributes": [
            {"variable": True, "code": q.code, "datatype": q.datatype, "required": bool(q.required),
             "datatype_description": None, "order": q.position, "description": q.description or None,
             "values": [{"key": v["key"], "name": v["name"]} for v in q.values]}
            for q in questions
        ],
    }


# ---------------------------------------------------------------------------- requests


def request_of(case: Case, *, category: Category | None, department: Department | None, locale: str,
               tz: ZoneInfo, notes: str | None, extensions: bool, link: SyncLink | None,
               submission: CaseSubmission | None) -> dict[str, Any]:
    status = Status(case.status)
    service_name = None
    if category is not None:
        service_name = category.name_en if locale == "en" and category.name_en else category.name
    agency = None
    if department is not None:
        agency = department.name_en if locale == "en" and department.name_en else department.name
    body: dict[str, Any] = {
        "service_request_id": case.number,
        "status": "closed" if status in CLOSED_STATUSES else "open",
        "status_notes": notes or DEFAULT_NOTES[status],
        "service_name": service_name,
        "service_code": case.category_code,
        "description": case.description or None,
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _stamp(case.created_at, tz),
        "updated_datetime": _stamp(case.updated_at, tz),
        "expected_datetime": _stamp(case.handle_due_at, tz) if status not in CLOSED_STATUSES else None,
        "address": case.address,
        "address_id": submission.address_id if submission else None,
        "zipcode": None,
        "lat": case.lat if math.isfinite(case.lat) else None,
        "long": case.lon if math.isfinite(case.lon) else None,
        "media_url": (case.media_urls or [None])[0],
    }
    if extensions:
        body["extended_status"] = EXTENDED_STATUS[status]
        body["onegrid_status"] = status.value
        body["onegrid_grid"] = case.grid_code
        body["onegrid_report_count"] = case.report_count
        body["onegrid_origin"] = link.origin if link else None
        body["onegrid_origin_number"] = link.origin_number if link else None
    return body


def render_requests(session: Session, ctx: ServiceContext, rows: list[Case], *, locale: str,
                    extensions: bool) -> list[dict[str, Any]]:
    if not rows:
        return []
    ids = [c.id for c in rows]
    categories = {c.code: c for c in session.exec(select(Category).where(
        Category.code.in_({c.category_code for c in rows})))}
    departments = {d.code: d for d in session.exec(select(Department).where(
        Department.code.in_({c.department_code for c in categories.values()})))}
    # The latest note per case explains its current status.
    notes: dict[int, str] = {}
    for case_id, note in session.exec(select(CaseEvent.case_id, CaseEvent.note).where(
            CaseEvent.case_id.in_(ids), CaseEvent.note.is_not(None)).order_by(CaseEvent.id)):
        notes[case_id] = note
    links = {link.case_id: link for link in session.exec(select(SyncLink).where(SyncLink.case_id.in_(ids)))}
    subs = {s.case_id: s for s in session.exec(select(CaseSubmission).where(CaseSubmission.case_id.in_(ids)))}
    tz = ZoneInfo(ctx.timezone)
    out = []
    for case in rows:
        category = categories.get(case.category_code)
        department = departments.get(category.department_code) if category else None
        out.append(request_of(case, category=category, department=department, locale=locale, tz=tz,
                              notes=notes.get(case.id), extensions=extensions, link=links.get(case.id),
                              submission=subs.get(case.id)))
    return out


def _parse_when(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C/ISO 8601 date-time, e.g. 2026-11-21T08:00:00+08:00") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _number(name: str, value: str | None, low: float, high: float) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise Open311Error(400, f"{name} must be between {low} and {high}")
    return number


def _check_jurisdiction(ctx: ServiceContext, jurisdiction_id: str | None) -> None:
    expected = ctx.settings.open311_jurisdiction_id
    if expected and jurisdiction_id and jurisdiction_id != expected:
        raise Open311Error(404, f"unknown jurisdiction_id {jurisdiction_id[:80]!r}")


def _check_fmt(fmt: str) -> Fmt:
    try:
        return Fmt(fmt)
    except ValueError:
        raise Open311Error(404, "format must be json or xml") from None


# ---------------------------------------------------------------------------- router

Str = Annotated[str | None, Query()]
FStr = Annotated[str | None, Form()]


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["open311"], responses=ERRORS)

    @router.get("/services.{fmt}", summary="Service list (the category catalogue)",
                responses=_ok_doc("Services (services.json schema)"))
    def services(request: Request, fmt: Fmt, ctx: CtxDep, session: SessionDep, jurisdiction_id: Str = None,
                 locale: Str = None) -> Response:
        _check_jurisdiction(ctx, jurisdiction_id)
        lang = _locale(request, locale, ctx.settings.default_locale)
        rows = session.exec(select(Category).where(Category.active == True).order_by(  # noqa: E712
            Category.kind, Category.code)).all()
        with_questions = set(session.exec(select(intake.ServiceQuestion.category_code).distinct()))
        data = [service_of(c, lang, c.code in with_questions) for c in rows]
        return render(fmt, data, root="services", item="service")

    @router.get("/services/{service_code}.{fmt}", summary="Service definition (the category's questions)",
                responses=_ok_doc("Service definition (service-definition.json schema)"))
    def service_definition(service_code: str, fmt: Fmt, ctx: CtxDep, session: SessionDep,
                           jurisdiction_id: Str = None) -> Response:
        _check_jurisdiction(ctx, jurisdiction_id)
        category = session.exec(select(Category).where(Category.code == service_code,
                                                        Category.active == True)).first()  # noqa: E712
        if category is None:
            raise Open311Error(404, f"unknown service_code {service_code[:64]!r}")
        data = definition_of(category, intake.service_questions(session, category.code))
        return render(fmt, data, root="service_definition")

    @router.post("/requests.{fmt}", summary="Create a service request (form-encoded)",
                 responses=_ok_doc("[{service_request_id, service_notice, account_id}]"))
    async def create_request(
        request: Request, fmt: Fmt, ctx: CtxDep,
        service_code: Annotated[str, Form(max_length=64)],
        lat: Annotated[float, Form(ge=-90, le=90, description="WGS84 latitude (this server needs lat/long)")],
        long: Annotated[float, Form(ge=-180, le=180, description="WGS84 longitude")],
        api_key: FStr = None, jurisdiction_id: FStr = None, address_string: FStr = None, address_id: FStr = None, email: FStr = None,
        device_id: FStr = None, account_id: FStr = None, first_name: FStr = None, last_name: FStr = None,
        phone: FStr = None, description: FStr = None, media_url: FStr = None,
        query_key: Annotated[str | None, Depends(api_key_query)] = None,
    ) -> Response:
        principal = await _key(request, ctx, api_key or query_key, Scope.WRITE)
        _check_jurisdiction(ctx, jurisdiction_id)
        form = await request.form()
        attributes: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name.startswith("attribute[") and name.endswith("]"):
                code = name[len("attribute["):].rstrip("]").removesuffix("][")
                if name.endswith("[]"):
                    attributes.setdefault(code, []).append(str(value))
                else:
                    attributes[code] = str(value)
        latitude, longitude = _number("lat", str(lat), -90, 90), _number("long", str(long), -180, 180)
        if description and len(description) > 4000:
            raise Open311Error(400, "description is limited to 4000 characters")
        if media_url and (len(media_url) > 2000 or not media_url.startswith(("http://", "https://"))):
            raise Open311Error(400, "media_url must be an http(s) URL")
        fields = {"address_string": 500, "address_id": 200, "email": 200, "first_name": 100, "last_name": 100,
                  "phone": 50, "device_id": 200, "account_id": 200}
        values = {"address_string": address_string, "address_id": address_id, "email": email,
                  "first_name": first_name, "last_name": last_name, "phone": phone, "device_id": device_id,
                  "account_id": account_id}
        for name, limit in fields.items():
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
        due = _stamp(case.handle_due_at, ZoneInfo(ctx.timezone))
        notice = f"Registered as {case.number}" + (f"; expected to be handled by {due}" if due else "")
        data = [{"service_request_id": case.number, "service_notice": notice}]
        if account_id:
            data[0]["account_id"] = account_id
        return render(fmt, data, root="service_requests", item="request")

    @router.get("/requests.{fmt}", summary="Service requests (default: the last 90 days, newest first)",
                responses=_ok_doc("Requests (requests.json schema)"))
    async def list_requests(
        request: Request, fmt: Fmt, ctx: CtxDep,
        query_key: Annotated[str | None, Depends(api_key_query)] = None,
        jurisdiction_id: Str = None, service_request_id: Str = None, service_code: Str = None,
        start_date: Str = None, end_date: Str = None, status: Str = None, extensions: Str = None,
        updated_after: Str = None, updated_before: Str = None, locale: Str = None,
    ) -> Response:
        principal = await _key(request, ctx, query_key, Scope.READ)
        _check_jurisdiction(ctx, jurisdiction_id)
        params = {"service_request_id": service_request_id, "service_code": service_code, "start_date": start_date,
                  "end_date": end_date, "status": status, "updated_after": updated_after,
                  "updated_before": updated_before}
        lang = _locale(request, locale, ctx.settings.default_locale)
        data = await asyncio.to_thread(_find_requests, ctx, principal, params, lang, _flag(extensions))
        return render(fmt, data, root="service_requests", item="request")

    @router.get("/requests/{service_request_id}.{fmt}", summary="One service request",
                responses=_ok_doc("A one-element requests array (requests.json schema)"))
    async def read_request(
        request: Request, service_request_id: str, fmt: Fmt, ctx: CtxDep,
        query_key: Annotated[str | None, Depends(api_key_query)] = None,
        jurisdiction_id: Str = None, extensions: Str = None, locale: Str = None,
    ) -> Response:
        principal = await _key(request, ctx, query_key, Scope.READ)
        _check_jurisdiction(ctx, jurisdiction_id)
        lang = _locale(request, locale, ctx.settings.default_locale)

        def find() -> list[dict[str, Any]]:
            with ctx.sessions() as session:
                case = session.exec(select(Case).where(Case.number == service_request_id)).first()
                if case is None or not case_in_scope(session, principal, case):
                    raise Open311Error(404, "no such service request")
                return render_requests(session, ctx, [case], locale=lang, extensions=_flag(extensions))

        data = await asyncio.to_thread(find)
        return render(fmt, data, root="service_requests", item="request")

    return router


def _find_requests(ctx: ServiceContext, principal: Principal, params: dict[str, str | None], locale: str,
                   extensions: bool) -> list[dict[str, Any]]:
    limit = ctx.settings.open311_max_results
    with ctx.sessions() as session:
        stmt = select(Case).where(case_scope_clause(principal))
        ids = _csv(params["service_request_id"])
        if ids:
            # The standard: service_request_id overrides every other parameter.
            rows = session.exec(stmt.where(Case.number.in_(ids[:limit]))).all()
            if not rows:  # none of them exists in the key's area: the same answer as for an unknown id
                raise Open311Error(404, "no such service request")
            return render_requests(session, ctx, list(rows), locale=locale, extensions=extensions)
        codes = _csv(params["service_code"])
        if codes:
            stmt = stmt.where(Case.category_code.in_(codes))
        statuses = [s.lower() for s in _csv(params["status"])]
        if any(s not in ("open", "closed") for s in statuses):
            raise Open311Error(400, "status must be open, closed, or both separated by a comma")
        if statuses and set(statuses) != {"open", "closed"}:
            closed = [s.value for s in CLOSED_STATUSES]
            stmt = stmt.where(Case.status.in_(closed) if statuses[0] == "closed" else Case.status.not_in(closed))
        start, end = _parse_when("start_date", params["start_date"]), _parse_when("end_date", params["end_date"])
        after = _parse_when("updated_after", params["updated_after"])
        before = _parse_when("updated_before", params["updated_before"])
        window = timedelta(days=ctx.settings.open311_default_window_days)
        if start and end and end < start:
            raise Open311Error(400, "end_date is before start_date")
        if start and end and end - start > window:
            raise Open311Error(400, f"start_date to end_date may not span more than {window.days} days")
        if after or before:
            # Polling by updated_datetime (an extension): oldest change first so a cursor can follow.
            if after:
                stmt = stmt.where(Case.updated_at >= after)
            if before:
                stmt = stmt.where(Case.updated_at <= before)
            order = (Case.updated_at.asc(), Case.id.asc())
        else:
            if not start and not end:
                start = ctx.clock.now() - window
            elif start and not end:
                end = start + window
            elif end and not start:
                start = end - window
            stmt = stmt.where(Case.created_at >= start)
            if end is not None:
                stmt = stmt.where(Case.created_at <= end)
            order = (Case.created_at.desc(), Case.id.desc())
        if start and (after or before):
            stmt = stmt.where(Case.created_at >= start)
        if end and (after or before):
            stmt = stmt.where(Case.created_at <= end)
        rows = session.exec(stmt.order_by(*order).limit(limit)).all()
        return render_requests(session, ctx, list(rows), locale=locale, extensions=extensions)
