"""Inbound from the upstream: Open311 service requests pushed (signed) or polled.

What callers may rely on: unknown open requests become local cases (source ``upstream``,
dispatched like any other); a close upstream closes the local case where the lifecycle allows
the SYSTEM actor to; applying the same request twice changes nothing more.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from models.api import IntakeClaim, SyncCursor
from models.lifecycle import TERMINAL, Action, Actor, LifecycleError, Role, Status
from models.tables import Case, CaseSource
from services import cases, office_actions
from services.cases import OutsideGrid, StaleCase, UnknownCategory
from services.context import ServiceContext
from services.db import transaction
from services.upstream_mirror import parse_time

log = logging.getLogger(__name__)

POLL_FEED = "upstream_requests"
SYSTEM = Actor(Role.SYSTEM)
CLAIM_LEASE = timedelta(seconds=120)  # how long an import may hold its claim before another may retry


class BadSignature(Exception):
    """A push whose signature or timestamp does not check out."""


def sign_push(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` (what the upstream sends)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_push(secret: str, *, timestamp: str | None, signature: str | None, body: bytes, now: datetime,
                tolerance_s: int) -> None:
    """Raise BadSignature unless `signature` is ours over `timestamp` and `body` and the timestamp is fresh."""
    if not timestamp or not signature or not timestamp.strip().lstrip("-").isdigit():
        raise BadSignature("missing signature or timestamp")
    ts = int(timestamp.strip())
    if abs(now.timestamp() - ts) > tolerance_s:
        raise BadSignature("timestamp outside the allowed window")
    if not hmac.compare_digest(sign_push(secret, ts, body), signature.strip()):
        raise BadSignature("signature does not match")


def _upstream_status_closed(request: dict[str, Any]) -> bool:
    return str(request.get("status") or "open").lower() == "closed"


def apply_upstream_request(ctx: ServiceContext, *, request: dict[str, Any]) -> str:
    """Apply one Open311 service request from the upstream; returns what happened.

    Outcomes: ``imported`` (a new local case), ``closed`` (the local case was closed or
    verified), ``unchanged``, ``ignored`` (a closed request we never had), ``conflict`` (closed
    upstream while a worker is on it here: left for people), ``rejected`` (unknown category,
    outside the map, malformed). Idempotent: applying the same request twice changes nothing more.
    """
    remote_id = str(request.get("service_request_id") or "").strip()[:200]
    if not remote_id:
        return "rejected"
    closed = _upstream_status_closed(request)
    with ctx.sessions() as session:
        case = session.exec(select(Case).where(Case.external_id == remote_id)).first()
        if case is None and request.get("onegrid_origin") == ctx.settings.instance_id:
            # One of our own cases, mirrored upstream before we learnt its id there.
            case = session.exec(select(Case).where(Case.number == request.get("onegrid_origin_number"))).first()
            if case is not None:
                session.execute(sa.update(Case).where(Case.id == case.id, Case.external_id.is_(None))
                                .values(external_id=remote_id))
                session.commit()
    if case is None:
        return "ignored" if closed else _import(ctx, remote_id, request)
    status = Status(case.status)
    if not closed or status in TERMINAL:
        return "unchanged"
    if status is Status.AWAITING_VERIFICATION:
        action = Action.APPROVE
    elif status in (Status.REPORTED, Status.REGISTERED, Status.DISPATCHED, Status.RETURNED, Status.SHELVED):
        action = Action.CANCEL
    else:
        log.warning("case %s closed upstream while %s here; left for people", case.number, status)
        return "conflict"
    notes = str(request.get("status_notes") or "").strip()
    note = f"Closed at the platform of record: {notes}"[:2000] if notes else "Closed at the platform of record"
    try:
        if action is Action.CANCEL:  # its orders are withdrawn and their workers told, as for any cancel
            office_actions.act(ctx, case_id=case.id, action=action, actor=SYSTEM, note=note,
                               expected_version=case.version)
        else:
            cases.apply_action(ctx, case_id=case.id, action=action, actor=SYSTEM, note=note,
                               expected_version=case.version)
    except (StaleCase, LifecycleError):
        return "conflict"
    return "closed"


def _import(ctx: ServiceContext, remote_id: str, request: dict[str, Any]) -> str:
    try:
        lat, lon = float(request["lat"]), float(request["long"])
        category_code = str(request["service_code"])
    except (KeyError, TypeError, ValueError):
        return "rejected"
    now = ctx.clock.now()
    try:
        with transaction(ctx.sessions) as session:
            claim = session.exec(select(IntakeClaim).where(IntakeClaim.source == CaseSource.UPSTREAM.value,
                                                           IntakeClaim.source_ref == remote_id,
                                                           IntakeClaim.kind == "upstream")).first()
            if claim is not None:
                if claim.case_id is not None or (claim.lease_until and claim.lease_until > now):
                    return "unchanged"
                opened = session.exec(select(Case).where(Case.source == CaseSource.UPSTREAM.value,
                                                         Case.source_event_id == remote_id)).first()
                if opened is not None:
                    claim.case_id, claim.outcome, claim.lease_until = opened.id, "created", None
                    session.execute(sa.update(Case).where(Case.id == opened.id).values(external_id=remote_id))
                    return "unchanged"
                claim.lease_until = now + CLAIM_LEASE
            else:
                claim = IntakeClaim(source=CaseSource.UPSTREAM.value, source_ref=remote_id, kind="upstream",
                                    lease_until=now + CLAIM_LEASE, created_at=now)
            session.add(claim)
    except IntegrityError:
        return "unchanged"  # a concurrent push or poll of the same request is importing it
    description = str(request.get("description") or "")[:4000]
    address = request.get("address")
    try:
        case = cases.report_case(ctx, actor=SYSTEM, source=CaseSource.UPSTREAM, category_code=category_code,
                                 lat=lat, lon=lon, description=description,
                                 address=str(address)[:500] if address else None, source_event_id=remote_id)
    except (UnknownCategory, OutsideGrid) as exc:
        log.warning("upstream request %s not imported: %s", remote_id, exc)
        with transaction(ctx.sessions) as session:
            session.execute(sa.delete(IntakeClaim).where(IntakeClaim.source == CaseSource.UPSTREAM.value,
                                                         IntakeClaim.source_ref == remote_id,
                                                         IntakeClaim.kind == "upstream"))
        return "rejected"
    media = request.get("media_url")
    with transaction(ctx.sessions) as session:
        values: dict[str, Any] = {"external_id": remote_id}
        if media:
            values["media_urls"] = [str(media)[:2000]]
        session.execute(sa.update(Case).where(Case.id == case.id).values(**values))
        session.execute(sa.update(IntakeClaim).where(
            IntakeClaim.source == CaseSource.UPSTREAM.value, IntakeClaim.source_ref == remote_id,
            IntakeClaim.kind == "upstream").values(case_id=case.id, outcome="created", lease_until=None))
    return "imported"


_NUMERIC_FIELDS = frozenset({"lat", "long"})


def requests_from_xml(data: bytes | str) -> list[dict[str, Any]]:
    """Open311 ``<service_requests>`` XML as the JSON shape (empty elements → None, lat/long → numbers).

    Parsed with defusedxml: entity expansion, external entities and DTDs are refused (ValueError).
    """
    try:
        root = fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        raise ValueError(f"unsafe or malformed XML: {type(exc).__name__}") from None
    out = []
    for request in root.findall("request"):
        item: dict[str, Any] = {}
        for child in request:
            text = child.text.strip() if child.text and child.text.strip() else None
            if text is not None and child.tag in _NUMERIC_FIELDS:
                try:
                    item[child.tag] = float(text)
                except ValueError:
                    item[child.tag] = None
            elif text is not None and text in ("true", "false") and child.tag.startswith("onegrid_"):
                item[child.tag] = text == "true"
            else:
                item[child.tag] = text
        out.append(item)
    return out


def _cursor(ctx: ServiceContext) -> str | None:
    with ctx.sessions() as session:
        row = session.get(SyncCursor, POLL_FEED)
        return row.value if row else None


def _save_cursor(ctx: ServiceContext, value: str) -> None:
    with transaction(ctx.sessions) as session:
        row = session.get(SyncCursor, POLL_FEED) or SyncCursor(name=POLL_FEED, value=value)
        row.value, row.updated_at = value, ctx.clock.now()
        session.add(row)


async def poll_upstream_once(ctx: ServiceContext, client: httpx.AsyncClient, *, base_url: str,
                             api_key: str | None) -> dict[str, int]:
    """Read the upstream's Open311 requests.json updated since the cursor and apply each; returns counts.

    The cursor (the latest `updated_datetime` applied) moves only after the requests up to it were
    applied, so a crash re-reads rather than skips. Raises httpx errors for the caller to retry.
    """
    params: dict[str, str] = {"extensions": "true"}
    cursor = await asyncio.to_thread(_cursor, ctx)
    if cursor:
        params["updated_after"] = cursor
    if api_key:
        params["api_key"] = api_key
    response = await client.get(f"{base_url.rstrip('/')}/open311/v2/requests.json", params=params)
    response.raise_for_status()
    if "xml" in response.headers.get("content-type", ""):
        requests = requests_from_xml(response.content)
    else:
        requests = response.json()
    if not isinstance(requests, list):
        raise ValueError("requests.json did not answer a list")
    requests.sort(key=lambda r: str(r.get("updated_datetime") or r.get("requested_datetime") or ""))
    counts: dict[str, int] = {}
    latest = cursor
    for request in requests:
        if not isinstance(request, dict):
            continue
        outcome = await asyncio.to_thread(apply_upstream_request, ctx, request=request)
        counts[outcome] = counts.get(outcome, 0) + 1
        stamp = request.get("updated_datetime") or request.get("requested_datetime")
        if stamp and (latest is None or parse_time(stamp) >= parse_time(latest)):
            latest = str(stamp)
    if latest and latest != cursor:
        await asyncio.to_thread(_save_cursor, ctx, latest)
    return counts
