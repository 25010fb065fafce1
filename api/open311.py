"""Open311 GeoReport v2 under /open311/v2, in JSON and XML, as the standard defines it.

Responses follow the JSON Schemas in api/open311_schemas/ (validated in tests). XML is produced
with xml.etree (escaping by the library, never by string concatenation); errors are the standard
array of ``{code, description}`` (400, 403, 404; 429 for the rate limit). OneGrid's statuses map
onto ``open``/``closed`` with ``status_notes``; with ``extensions=true`` each request also carries
the FixMyStreet-style ``extended_status`` and OneGrid's own fields.

What a request shows depends on its reader (`services.privacy.Audience`): without a key (the public
view) and for a key without ``pii``, the description and ``status_notes`` are masked (`privacy.mask_text`) and the
coordinates are rounded to about 100 m (`privacy.coarsen`); a ``pii`` key reads both as stored. The
public view carries a ``media_url`` only when it is the URL an Open311 client itself published with
the request: photos from the bot, cameras or the city platform are not cleared for public view.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from models.api import ServiceQuestion
from models.lifecycle import Status
from models.tables import Category
from services import privacy
from services.context import ServiceContext
from services.open311_queries import CLOSED_STATUSES, RequestQuery, RequestRecord

PREFIX = "/open311/v2"

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


def ok_doc(description: str) -> dict[int | str, Any]:
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


def stamp(when: datetime | None, tz: ZoneInfo) -> str | None:
    return when.astimezone(tz).isoformat(timespec="seconds") if when else None


def locale_of(request: Request, explicit: str | None, default: str) -> str:
    wanted = explicit or request.headers.get("accept-language", "") or default
    return "en" if wanted.lower().startswith("en") else "zh_CN"


# ---------------------------------------------------------------------------- services


def service_of(category: Category, locale: str, has_questions: bool) -> dict[str, Any]:
    name = category.name_en if locale == "en" and category.name_en else category.name
    other = category.name if locale == "en" else category.name_en
    return {"service_code": category.code, "service_name": name, "description": other or None,
            "metadata": has_questions, "type": "realtime", "keywords": category.kind, "group": category.kind}


def definition_of(category: Category, questions: list[ServiceQuestion]) -> dict[str, Any]:
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


def _shown_media(record: RequestRecord, audience: privacy.Audience) -> str | None:
    urls = record.case.media_urls or []
    if audience is privacy.Audience.PUBLIC and record.submission is None:
        return None  # only a URL an Open311 client published itself is public
    return urls[0] if urls else None


def _shown_point(value: float, audience: privacy.Audience) -> float | None:
    if not math.isfinite(value):
        return None
    return value if audience is privacy.Audience.PII else privacy.coarsen(value)


def request_of(record: RequestRecord, *, locale: str, tz: ZoneInfo, extensions: bool,
               audience: privacy.Audience) -> dict[str, Any]:
    """One service request as the standard (and, with `extensions`, FixMyStreet) describes it, as
    `audience` may read it (see the module docstring)."""
    case, category, department = record.case, record.category, record.department
    description = case.description if audience is privacy.Audience.PII else privacy.mask_text(case.description)
    link, submission = record.link, record.submission
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
        "status_notes": (privacy.mask_text(record.note) if audience is not privacy.Audience.PII else record.note)
        or DEFAULT_NOTES[status],
        "service_name": service_name,
        "service_code": case.category_code,
        "description": description or None,
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": stamp(case.created_at, tz),
        "updated_datetime": stamp(case.updated_at, tz),
        "expected_datetime": stamp(case.handle_due_at, tz) if status not in CLOSED_STATUSES else None,
        "address": case.address,
        "address_id": submission.address_id if submission else None,
        "zipcode": None,
        "lat": _shown_point(case.lat, audience),
        "long": _shown_point(case.lon, audience),
        "media_url": _shown_media(record, audience),
    }
    if extensions:
        body["extended_status"] = EXTENDED_STATUS[status]
        body["onegrid_status"] = status.value
        body["onegrid_grid"] = case.grid_code
        body["onegrid_report_count"] = case.report_count
        body["onegrid_origin"] = link.origin if link else None
        body["onegrid_origin_number"] = link.origin_number if link else None
    return body


def render_requests(records: list[RequestRecord], *, locale: str, timezone: str, extensions: bool,
                    audience: privacy.Audience) -> list[dict[str, Any]]:
    tz = ZoneInfo(timezone)
    return [request_of(r, locale=locale, tz=tz, extensions=extensions, audience=audience) for r in records]


def parse_when(name: str, value: str | None, window: timedelta = timedelta(0)) -> datetime | None:
    """An ISO 8601 date-time in UTC; 400 when unreadable, or so near the calendar's ends that it (± the
    default `window` the search may add to it) cannot be represented."""
    if value is None or value == "":
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C/ISO 8601 date-time, e.g. 2026-11-21T08:00:00+08:00") from None
    try:
        when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        _ = (when - window, when + window)
    except OverflowError:
        raise Open311Error(400, f"{name} lies outside the dates this server can search") from None
    return when


def csv_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def number(name: str, value: str | None, low: float, high: float) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None
    if not math.isfinite(parsed) or not low <= parsed <= high:
        raise Open311Error(400, f"{name} must be between {low} and {high}")
    return parsed


def check_jurisdiction(ctx: ServiceContext, jurisdiction_id: str | None) -> None:
    expected = ctx.settings.open311_jurisdiction_id
    if expected and jurisdiction_id and jurisdiction_id != expected:
        raise Open311Error(400, f"unknown jurisdiction_id {jurisdiction_id[:80]!r}; this server serves {expected!r}")


def request_query(ctx: ServiceContext, params: dict[str, str | None]) -> RequestQuery:
    """The search of GET requests.{fmt}; 400 for a bad status, date or a span over the default window."""
    numbers = csv_list(params["service_request_id"])
    if numbers:  # the standard: service_request_id overrides every other parameter
        return RequestQuery(numbers=tuple(numbers))
    statuses = [s.lower() for s in csv_list(params["status"])]
    if any(s not in ("open", "closed") for s in statuses):
        raise Open311Error(400, "status must be open, closed, or both separated by a comma")
    closed = statuses[0] == "closed" if statuses and set(statuses) != {"open", "closed"} else None
    window = timedelta(days=ctx.settings.open311_default_window_days)
    start, end = parse_when("start_date", params["start_date"], window), parse_when("end_date", params["end_date"], window)
    after = parse_when("updated_after", params["updated_after"], window)
    before = parse_when("updated_before", params["updated_before"], window)
    if start and end and end < start:
        raise Open311Error(400, "end_date is before start_date")
    if start and end and end - start > window:
        raise Open311Error(400, f"start_date to end_date may not span more than {window.days} days")
    return RequestQuery(service_codes=tuple(csv_list(params["service_code"])), closed=closed, start=start,
                        end=end, updated_after=after, updated_before=before)
