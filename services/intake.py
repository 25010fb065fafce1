"""Machine intake: cases from cameras, sensors and the 12345 hotline, folded and cleared by their source.

What callers may rely on:
- `intake_event` opens at most one case per (source, device, event id), however often and
  however concurrently the event is delivered; a repeat answers with the case it opened.
- Repeated events from one source (the same API key, source kind and device) in the same
  category, within the category's duplicate radius and the category's fold window (sliding:
  each repeat extends it), fold into that open case: its report count goes up and the new media
  URLs are added, and no new case is opened.
- New cases go through `services.cases.report_case`, so they are registered and dispatched like
  any other case, by the SYSTEM actor.
- `clear_case` applies the category's clear rule (`models.api.ClearRule`) through the one
  clear-at-source rule of `services.verification` (SYSTEM actor): a case awaiting verification is
  closed with its proofs approved and the supervisors' cards and workers told; under CLOSE a case
  nobody started on is cancelled as resolved at source, its offers withdrawn and tasks cancelled.
  A clear that cannot act yet (the case is being handled; its worker is told) is kept and applied
  by `apply_pending_clears` once the case awaits verification.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from geopy.distance import geodesic
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.api import CaseSubmission, ClearRule, IntakeClaim, IntakeRule, MachineCase, ServiceQuestion
from models.lifecycle import TERMINAL, Actor, LifecycleError, Role, Status
from models.tables import Case, CaseSource, Category, OutboxItem
from services import cases
from services.api_keys import Principal, area_in_scope
from services.cases import CaseError, CaseNotFound, OutsideGrid, StaleCase, UnknownCategory
from services.context import ServiceContext
from services.db import transaction
from services.verification import SourceClear, clear_at_source_in, clear_reason

log = logging.getLogger(__name__)

MACHINE_SOURCES = (CaseSource.CAMERA, CaseSource.SENSOR, CaseSource.HOTLINE)
MAX_MEDIA_URLS = 20
CLAIM_LEASE = timedelta(seconds=60)
SYSTEM = Actor(Role.SYSTEM)


class IntakeInProgress(CaseError):
    """The same event is being processed right now; try again shortly."""


class OutsideArea(CaseError):
    """The point lies outside the caller's area."""


class NotMachineCase(CaseError):
    """Only cases opened through machine intake can be cleared by their source."""


@dataclass(frozen=True)
class MachineReport:
    source: CaseSource
    event_id: str
    category_code: str
    lat: float
    lon: float
    device_id: str = ""
    description: str = ""
    address: str | None = None
    media_urls: list[str] = field(default_factory=list)

    @property
    def source_ref(self) -> str:
        return f"{self.device_id}/{self.event_id}"[:200]


@dataclass(frozen=True)
class IntakeResult:
    case: Case
    outcome: str  # created | folded | duplicate


@dataclass(frozen=True)
class ClearResult:
    case: Case
    outcome: str  # verified | cancelled | pending | recorded | already_closed


def _rule(session: Session, ctx: ServiceContext, category_code: str) -> tuple[ClearRule, int]:
    row = session.get(IntakeRule, category_code)
    if row is not None:
        return ClearRule(row.on_clear), row.fold_window_s
    return ClearRule(ctx.settings.intake_default_clear_rule), ctx.settings.intake_fold_window_s


def _merge_media(existing: list[str], new: list[str]) -> list[str]:
    merged = list(existing)
    for url in new:
        if url not in merged:
            merged.append(url)
    return merged[-MAX_MEDIA_URLS:]


def _fold_target(session: Session, key_id: int | None, report: MachineReport, category: Category,
                 window_s: int, now: datetime) -> tuple[MachineCase, Case] | None:
    rows = session.exec(
        select(MachineCase, Case)
        .join(Case, Case.id == MachineCase.case_id)
        .where(
            MachineCase.api_key_id == key_id,
            MachineCase.source == report.source.value,
            MachineCase.device_id == report.device_id,
            MachineCase.category_code == report.category_code,
            MachineCase.last_seen_at >= now - timedelta(seconds=window_s),
            Case.status.not_in([s.value for s in TERMINAL]),
        )
        .order_by(MachineCase.last_seen_at.desc())
    ).all()
    for machine, case in rows:
        if geodesic((machine.lat, machine.lon), (report.lat, report.lon)).meters <= category.duplicate_radius_m:
            return machine, case
    return None


def _record_created(session: Session, claim: IntakeClaim, case: Case, report: MachineReport,
                    key_id: int | None, now: datetime) -> None:
    if report.media_urls:
        session.execute(sa.update(Case).where(Case.id == case.id).values(
            media_urls=_merge_media(case.media_urls or [], report.media_urls)))
    if session.get(MachineCase, case.id) is None:
        session.add(MachineCase(case_id=case.id, api_key_id=key_id, source=report.source.value,
                                device_id=report.device_id, category_code=report.category_code,
                                lat=report.lat, lon=report.lon, first_seen_at=now, last_seen_at=now))
    claim.case_id, claim.outcome, claim.lease_until = case.id, "created", None
    session.add(claim)


def intake_event(ctx: ServiceContext, *, principal: Principal, report: MachineReport) -> IntakeResult:
    """Open, fold or recognise one machine event. See the module docstring.

    Raises UnknownCategory, OutsideGrid, OutsideArea (the point is outside the key's area) or
    IntakeInProgress; nothing is stored then.
    """
    if report.source not in MACHINE_SOURCES:
        raise CaseError(f"source must be one of {', '.join(s.value for s in MACHINE_SOURCES)}")
    now = ctx.clock.now()
    grid_code = ctx.grid_map.lookup(report.lon, report.lat) if ctx.grid_map is not None else None
    if ctx.grid_map is not None and grid_code is None:
        raise OutsideGrid(f"{report.lat:.6f},{report.lon:.6f}")
    ref = report.source_ref
    try:
        early = _claim_or_fold(ctx, principal, report, grid_code, now)
    except IntegrityError:  # a concurrent delivery of the same event claimed it first
        raise IntakeInProgress(ref) from None
    if early is not None:
        return early
    # A new case: registered and dispatched by the one path every case takes.
    try:
        case = cases.report_case(ctx, actor=SYSTEM, source=report.source, category_code=report.category_code,
                                 lat=report.lat, lon=report.lon, description=report.description,
                                 address=report.address, source_event_id=ref)
    except Exception:
        with transaction(ctx.sessions) as session:  # release the claim so a retry can run at once
            session.execute(sa.delete(IntakeClaim).where(
                IntakeClaim.source == report.source.value, IntakeClaim.source_ref == ref,
                IntakeClaim.kind == "report", IntakeClaim.case_id.is_(None)))
        raise
    with transaction(ctx.sessions) as session:
        claim = session.exec(select(IntakeClaim).where(
            IntakeClaim.source == report.source.value, IntakeClaim.source_ref == ref,
            IntakeClaim.kind == "report")).one()
        _record_created(session, claim, case, report, principal.id, now)
        session.flush()
        case = session.get(Case, case.id)
        session.refresh(case)
    return IntakeResult(case, "created")


def _claim_or_fold(ctx: ServiceContext, principal: Principal, report: MachineReport, grid_code: str | None,
                   now: datetime) -> IntakeResult | None:
    """Claim the event in one transaction; answer at once for a repeat or a fold, else None."""
    ref = report.source_ref
    with transaction(ctx.sessions) as session:
        if not area_in_scope(session, principal, grid_code):
            raise OutsideArea(grid_code or "")
        category = session.exec(select(Category).where(Category.code == report.category_code)).first()
        if category is None or not category.active:
            raise UnknownCategory(report.category_code)
        claim = session.exec(select(IntakeClaim).where(
            IntakeClaim.source == report.source.value, IntakeClaim.source_ref == ref,
            IntakeClaim.kind == "report")).first()
        if claim is not None:
            if claim.case_id is not None:
                return IntakeResult(session.get(Case, claim.case_id), "duplicate")
            if claim.lease_until is not None and claim.lease_until > now:
                raise IntakeInProgress(ref)
            # The process that claimed it died. Did it get as far as opening the case?
            opened = session.exec(select(Case).where(Case.source == report.source.value,
                                                     Case.source_event_id == ref)).first()
            if opened is not None:
                _record_created(session, claim, opened, report, principal.id, now)
                return IntakeResult(opened, "duplicate")
            claim.lease_until = now + CLAIM_LEASE
        else:
            claim = IntakeClaim(source=report.source.value, source_ref=ref, kind="report",
                                api_key_id=principal.id, lease_until=now + CLAIM_LEASE, created_at=now)
        session.add(claim)
        _, window_s = _rule(session, ctx, report.category_code)
        target = _fold_target(session, principal.id, report, category, window_s, now)
        if target is not None:
            machine, case = target
            machine.events += 1
            machine.last_seen_at = now
            machine.clear_pending = False  # the problem is back: an earlier clear no longer holds
            session.add(machine)
            media = _merge_media(case.media_urls or [], report.media_urls)
            count = case.report_count + 1  # read before the UPDATE, which refreshes `case` in the session
            session.execute(sa.update(Case).where(Case.id == case.id).values(
                report_count=Case.report_count + 1, media_urls=media))
            session.add(OutboxItem(case_id=case.id, topic="case.repeated", next_attempt_at=now, created_at=now,
                                   payload={"number": case.number, "at": now.isoformat(),
                                            "report_count": count, "media_urls": media}))
            claim.case_id, claim.outcome, claim.lease_until = case.id, "folded", None
            session.flush()
            session.refresh(case)
            return IntakeResult(case, "folded")
    return None


# The clear-at-source rule's outcome, as the API names it.
_OUTCOMES = {
    SourceClear.CLOSED: "verified",
    SourceClear.RESOLVED: "closed",
    SourceClear.KEPT: "pending",
    SourceClear.WAITING: "pending",
    SourceClear.ALREADY_ENDED: "already_closed",
}


def _clear_in(session: Session, ctx: ServiceContext, case: Case, rule: ClearRule, reason: str, *,
              tell_workers: bool) -> str:
    """Apply `rule` to a machine case in the caller's transaction; returns the outcome's name.

    The act itself is `services.verification.clear_at_source_in`: awaiting verification → closed
    (verified) with its completions, cards and workers settled; under CLOSE, a case nobody started
    on is closed as cleared at source with its offers withdrawn and tasks cancelled. Otherwise the
    clear waits.
    """
    status = Status(case.status)
    if status in TERMINAL:
        return "already_closed"
    if rule is ClearRule.IGNORE:
        return "recorded"
    if status is Status.SHELVED:
        return "pending"  # on hold by a person's decision: the clear waits until it is taken up again
    result = clear_at_source_in(session, ctx, case, reason=reason, close_unstarted=rule is ClearRule.CLOSE,
                                tell_workers=tell_workers)
    return _OUTCOMES[result]


def clear_case(ctx: ServiceContext, *, principal: Principal, case_id: int, note: str | None = None) -> ClearResult:
    """The source says the problem is gone: act per the category's clear rule.

    One transaction per attempt: the case change (event, outbox row, notifications) and the
    machine record's `cleared_at` / `clear_pending` commit together. A worker on the case is told
    once, here; `apply_pending_clears` acts later without telling them again.
    Raises CaseNotFound (also for a case outside the key's area: nothing changes), NotMachineCase,
    or StaleCase when the case kept changing under three attempts.
    """
    now = ctx.clock.now()
    reason = clear_reason(note)
    for _ in range(3):  # a concurrent change of the case: read again and decide again
        try:
            with transaction(ctx.sessions) as session:
                case = session.get(Case, case_id)
                if case is None or not area_in_scope(session, principal, case.grid_code):
                    raise CaseNotFound(str(case_id))
                machine = session.get(MachineCase, case_id)
                if machine is None:
                    raise NotMachineCase(case.number)
                rule, _ = _rule(session, ctx, case.category_code)
                outcome = _clear_in(session, ctx, case, rule, reason, tell_workers=True)
                machine.cleared_at = now
                machine.clear_pending = outcome == "pending"
                session.add(machine)
                session.flush()
                session.refresh(case)
        except (StaleCase, LifecycleError):
            continue
        ctx.on_notifications()
        return ClearResult(case, outcome)
    raise StaleCase(str(case_id))


def apply_pending_clears(ctx: ServiceContext, *, limit: int = 200) -> int:
    """Apply clears that had to wait (the case was being handled); returns how many acted."""
    with ctx.sessions() as session:
        case_ids = session.exec(select(MachineCase.case_id).where(MachineCase.clear_pending == sa.true())
                                .order_by(MachineCase.case_id).limit(limit)).all()
    done = 0
    for case_id in case_ids:
        try:
            with transaction(ctx.sessions) as session:
                case = session.get(Case, case_id)
                machine = session.get(MachineCase, case_id)
                if case is None or machine is None or not machine.clear_pending:
                    continue
                rule, _ = _rule(session, ctx, case.category_code)
                outcome = _clear_in(session, ctx, case, rule, clear_reason(None), tell_workers=False)
                if outcome == "pending":
                    continue
                machine.clear_pending = False
                session.add(machine)
        except (StaleCase, LifecycleError) as exc:
            log.info("pending clear of case %s not applied yet: %s", case_id, exc)
            continue
        if outcome in ("verified", "closed"):
            done += 1
    if done:
        ctx.on_notifications()
    return done


def set_intake_rule(ctx: ServiceContext, *, category_code: str, on_clear: ClearRule,
                    fold_window_s: int) -> IntakeRule:
    """Create or replace the intake rule of a category. Raises UnknownCategory."""
    if fold_window_s < 0 or fold_window_s > 7 * 24 * 3600:
        raise CaseError("fold_window_s must be between 0 and 604800")
    with transaction(ctx.sessions) as session:
        if session.exec(select(Category.id).where(Category.code == category_code)).first() is None:
            raise UnknownCategory(category_code)
        row = session.get(IntakeRule, category_code) or IntakeRule(category_code=category_code)
        row.on_clear, row.fold_window_s, row.updated_at = on_clear.value, fold_window_s, ctx.clock.now()
        session.add(row)
    return row


def intake_rule(ctx: ServiceContext, *, category_code: str) -> tuple[ClearRule, int]:
    """The rule in force for a category (its own, or the settings' default)."""
    with ctx.sessions() as session:
        return _rule(session, ctx, category_code)




# ============================================================================ Open311 clients and category questions


@dataclass(frozen=True)
class ServiceRequest:
    """An Open311 POST requests: a resident's report made through a third-party app."""

    service_code: str
    lat: float
    lon: float
    description: str = ""
    address_string: str | None = None
    address_id: str | None = None
    media_url: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None


class BadAttributes(CaseError):
    """Attributes missing, unknown or outside their value lists; the message names them."""


def service_questions(session: Session, category_code: str) -> list[ServiceQuestion]:
    return list(session.exec(select(ServiceQuestion).where(ServiceQuestion.category_code == category_code)
                             .order_by(ServiceQuestion.position, ServiceQuestion.id)))


def _check_attributes(questions: list[ServiceQuestion], given: dict[str, Any]) -> dict[str, Any]:
    by_code = {q.code: q for q in questions}
    problems = [f"unknown attribute {code!r}" for code in given if code not in by_code]
    clean: dict[str, Any] = {}
    for q in questions:
        value = given.get(q.code)
        if value in (None, "", []):
            if q.required:
                problems.append(f"attribute {q.code!r} is required")
            continue
        keys = {v["key"] for v in q.values}
        values = value if isinstance(value, list) else [value]
        if q.datatype == "multivaluelist":
            bad = [v for v in values if str(v) not in keys]
            clean[q.code] = [str(v) for v in values]
        elif q.datatype == "singlevaluelist":
            bad = [v for v in values[:1] if str(v) not in keys] + (values[1:] and ["more than one value"])
            clean[q.code] = str(values[0])
        elif q.datatype == "number":
            try:
                clean[q.code] = float(values[0])
                bad = [] if math.isfinite(clean[q.code]) else [values[0]]
            except (TypeError, ValueError):
                bad = [values[0]]
        elif q.datatype == "datetime":
            try:
                datetime.fromisoformat(str(values[0]).replace("Z", "+00:00"))
                bad, clean[q.code] = [], str(values[0])
            except ValueError:
                bad = [values[0]]
        else:
            bad, clean[q.code] = [], str(values[0])[:2000]
        if bad:
            problems.append(f"attribute {q.code!r}: invalid value")
    if problems:
        raise BadAttributes("; ".join(problems))
    return clean


def submit_service_request(ctx: ServiceContext, *, principal: Principal, request: ServiceRequest) -> Case:
    """Register a case from an Open311 client (source ``resident``), keeping its contact and attributes.

    Raises UnknownCategory, OutsideGrid, OutsideArea or BadAttributes; nothing is stored then.
    """
    grid_code = ctx.grid_map.lookup(request.lon, request.lat) if ctx.grid_map is not None else None
    with ctx.sessions() as session:
        if ctx.grid_map is not None and grid_code is None:
            raise OutsideGrid(f"{request.lat:.6f},{request.lon:.6f}")
        if not area_in_scope(session, principal, grid_code):
            raise OutsideArea(grid_code or "")
        attributes = _check_attributes(service_questions(session, request.service_code), request.attributes)
    case = cases.report_case(ctx, actor=Actor(Role.RESIDENT), source=CaseSource.RESIDENT,
                             category_code=request.service_code, lat=request.lat, lon=request.lon,
                             description=request.description, address=request.address_string)
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        if request.media_url:
            session.execute(sa.update(Case).where(Case.id == case.id).values(media_urls=[request.media_url]))
        session.add(CaseSubmission(
            case_id=case.id, api_key_id=principal.id, address_string=request.address_string,
            address_id=request.address_id, email=request.email, first_name=request.first_name,
            last_name=request.last_name, phone=request.phone, device_id=request.device_id,
            account_id=request.account_id, attributes=attributes, created_at=now))
        session.flush()
        case = session.get(Case, case.id)
        session.refresh(case)
    return case


def set_service_questions(ctx: ServiceContext, *, category_code: str,
                          questions: list[dict[str, Any]]) -> list[ServiceQuestion]:
    """Replace the questions of a category (published as Open311 attributes). Raises UnknownCategory."""
    with transaction(ctx.sessions) as session:
        if session.exec(select(Category.id).where(Category.code == category_code)).first() is None:
            raise UnknownCategory(category_code)
        session.execute(sa.delete(ServiceQuestion).where(ServiceQuestion.category_code == category_code))
        rows = [ServiceQuestion(category_code=category_code, position=i + 1, **q) for i, q in enumerate(questions)]
        session.add_all(rows)
    return rows


def update_case_details(ctx: ServiceContext, *, principal: Principal, case_id: int,
                        description: str | None = None, address: str | None = None) -> Case:
    """Correct a case's description or address text. Raises CaseNotFound (also outside the key's area)."""
    with transaction(ctx.sessions) as session:
        case = session.get(Case, case_id)
        if case is None or not area_in_scope(session, principal, case.grid_code):
            raise CaseNotFound(str(case_id))
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if address is not None:
            values["address"] = address or None
        if values:
            session.execute(sa.update(Case).where(Case.id == case_id, Case.version == case.version).values(**values))
        session.refresh(case)
    return case


__all__ = [
    "BadAttributes",
    "ClearResult",
    "IntakeInProgress",
    "IntakeResult",
    "MachineReport",
    "NotMachineCase",
    "OutsideArea",
    "apply_pending_clears",
    "clear_case",
    "intake_event",
    "intake_rule",
    "ServiceRequest",
    "service_questions",
    "set_intake_rule",
    "set_service_questions",
    "submit_service_request",
    "update_case_details",
]
