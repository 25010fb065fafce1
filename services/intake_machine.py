"""Machine intake: cases from cameras, sensors and the 12345 hotline, folded by their source.

What callers may rely on:
- `intake_event` opens at most one case per (source, device, event id), however often and
  however concurrently the event is delivered; a repeat answers with the case it opened.
- Repeated events from one source (the same API key, source kind and device) in the same
  category, within the category's duplicate radius and the category's fold window (sliding:
  each repeat extends it), fold into that open case: its report count goes up and the new media
  URLs are added, and no new case is opened.
- New cases go through `services.cases.report_case`, so they are registered and dispatched like
  any other case, by the SYSTEM actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from geopy.distance import geodesic
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.api import IntakeClaim, MachineCase
from models.lifecycle import TERMINAL, Actor, Role
from models.tables import Case, CaseSource, Category, OutboxItem
from services import cases, dispatcher, grouped_writes, reference, welfare_calls
from services.api_keys import Principal, area_in_scope
from services.cases import CaseError, OutsideGrid, UnknownCategory
from services.context import ServiceContext
from services.db import transaction
from services.intake_rules import rule_of

MACHINE_SOURCES = (CaseSource.CAMERA, CaseSource.SENSOR, CaseSource.HOTLINE)
MAX_MEDIA_URLS = 20
CLAIM_LEASE = timedelta(seconds=60)
SYSTEM = Actor(Role.SYSTEM)


class IntakeInProgress(CaseError):
    """The same event is being processed right now; try again shortly."""


class OutsideArea(CaseError):
    """The point lies outside the caller's area."""


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
    drill: bool = False  # an exercise (演练): handled like any case, out of KPIs and upstream sync

    @property
    def source_ref(self) -> str:
        return f"{self.device_id}/{self.event_id}"[:200]


@dataclass(frozen=True)
class IntakeResult:
    case: Case
    outcome: str  # created | folded | duplicate



def _merge_media(existing: list[str], new: list[str]) -> list[str]:
    merged = list(existing)
    for url in new:
        if url not in merged:
            merged.append(url)
    return merged[-MAX_MEDIA_URLS:]


# Built once (asked for every machine event): SQLAlchemy reuses their compiled form and cache key.
_OPEN_OF_DEVICE = (
    select(MachineCase, Case)
    .join(Case, Case.id == MachineCase.case_id)
    .where(
        MachineCase.api_key_id == sa.bindparam("key_id"),
        MachineCase.source == sa.bindparam("source"),
        MachineCase.device_id == sa.bindparam("device_id"),
        MachineCase.category_code == sa.bindparam("category_code"),
        MachineCase.last_seen_at >= sa.bindparam("since"),
        Case.status.not_in([s.value for s in TERMINAL]),
    )
    .order_by(MachineCase.last_seen_at.desc())
)
_CLAIM = select(IntakeClaim).where(IntakeClaim.source == sa.bindparam("source"),
                                   IntakeClaim.source_ref == sa.bindparam("ref"), IntakeClaim.kind == "report")


# The batch reads name every column of their tables' indexes (ix_machine_case_series, uq_intake_claim), so
# the index answers: by device or ref alone the tables were scanned, a read that grew with every case.
# What the cross product of the lists adds is sorted out by device and ref below.
_OPEN_OF_DEVICES = (
    select(MachineCase, Case)
    .join(Case, Case.id == MachineCase.case_id)
    .where(MachineCase.api_key_id.in_(sa.bindparam("key_ids", expanding=True)),
           MachineCase.source.in_(sa.bindparam("sources", expanding=True)),
           MachineCase.device_id.in_(sa.bindparam("devices", expanding=True)),
           MachineCase.category_code.in_(sa.bindparam("categories", expanding=True)),
           MachineCase.last_seen_at >= sa.bindparam("since"), Case.status.not_in([s.value for s in TERMINAL]))
)
_CLAIMS_OF = select(IntakeClaim.source, IntakeClaim.source_ref).where(
    IntakeClaim.source.in_(sa.bindparam("sources", expanding=True)),
    IntakeClaim.source_ref.in_(sa.bindparam("refs", expanding=True)), IntakeClaim.kind == "report")
_PREFETCHED = "intake_prefetched"  # session.info


class _Prefetched:
    """What a batch of intakes read up front (`prefetch`): which of its events had a claim, and the open cases
    of its devices. An event whose ref or device an earlier event of the batch touched reads afresh."""

    def __init__(self, claims: set[tuple[str, str]], open_cases: dict[tuple, list[tuple[MachineCase, Case]]],
                 since: datetime) -> None:
        self.claims, self.open_cases, self.since = claims, open_cases, since
        self.touched_refs: set[tuple[str, str]] = set()
        self.touched_devices: set[tuple] = set()

    def no_claim(self, report: MachineReport) -> bool:
        ref = (report.source.value, report.source_ref)
        return ref not in self.claims and ref not in self.touched_refs

    def open_cases_of(self, device: tuple, since: datetime) -> list[tuple[MachineCase, Case]] | None:
        """The device's open cases seen since `since`, newest first; None when they must be read afresh."""
        if device in self.touched_devices or since < self.since:
            return None
        return [(machine, case) for machine, case in self.open_cases.get(device, []) if machine.last_seen_at >= since]

    def touch(self, key_id: int | None, report: MachineReport) -> None:
        self.touched_refs.add((report.source.value, report.source_ref))
        self.touched_devices.add(_device(key_id, report))


def _device(key_id: int | None, report: MachineReport) -> tuple:
    return (key_id, report.source.value, report.device_id, report.category_code)


def prefetch(session: Session, ctx: ServiceContext, events: list[tuple[int | None, MachineReport]],
             now: datetime) -> None:
    """Read the claims and the devices' open cases of a batch's events in two queries, for `intake_in` on
    `session` to answer from (each of them would be a query per event). Exact: the batch's own writes are
    tracked, and another process's claim meanwhile fails the claim's INSERT (the batch then runs alone)."""
    if not events:
        return
    windows = [rule_of(session, ctx, report.category_code)[1] for _, report in events]
    since = now - timedelta(seconds=max(windows))
    sources = sorted({report.source.value for _, report in events})
    claims = {(source, ref) for source, ref in session.execute(
        _CLAIMS_OF, {"sources": sources, "refs": sorted({report.source_ref for _, report in events})})}
    open_cases: dict[tuple, list[tuple[MachineCase, Case]]] = {}
    rows = session.exec(_OPEN_OF_DEVICES, params={
        "key_ids": sorted({key_id for key_id, _ in events if key_id is not None}), "sources": sources,
        "devices": sorted({r.device_id for _, r in events}), "categories": sorted({r.category_code for _, r in events}),
        "since": since}).all()
    for machine, case in sorted(rows, key=lambda row: row[0].last_seen_at, reverse=True):
        device = (machine.api_key_id, machine.source, machine.device_id, machine.category_code)
        open_cases.setdefault(device, []).append((machine, case))
    session.info[_PREFETCHED] = _Prefetched(claims, open_cases, since)


def _fold_target(session: Session, key_id: int | None, report: MachineReport, category: Category,
                 window_s: int, now: datetime) -> tuple[MachineCase, Case] | None:
    since = now - timedelta(seconds=window_s)
    known: _Prefetched | None = session.info.get(_PREFETCHED)
    rows = known.open_cases_of(_device(key_id, report), since) if known is not None else None
    if rows is None:
        rows = session.exec(_OPEN_OF_DEVICE, params={
            "key_id": key_id, "source": report.source.value, "device_id": report.device_id,
            "category_code": report.category_code, "since": since}).all()
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


def locate(ctx: ServiceContext, report: MachineReport) -> str | None:
    """The grid of the event's point (None without a grid map). Raises CaseError for a source that is no
    machine's, OutsideGrid for a point outside every grid; nothing is read from the store."""
    if report.source not in MACHINE_SOURCES:
        raise CaseError(f"source must be one of {', '.join(s.value for s in MACHINE_SOURCES)}")
    grid_code = ctx.grid_map.lookup(report.lon, report.lat) if ctx.grid_map is not None else None
    if ctx.grid_map is not None and grid_code is None:
        raise OutsideGrid(f"{report.lat:.6f},{report.lon:.6f}")
    return grid_code


def intake_in(session: Session, ctx: ServiceContext, *, principal: Principal, report: MachineReport,
              grid_code: str | None, now: datetime) -> IntakeResult:
    """Open, fold or recognise one machine event within `session` (the caller commits, then calls
    `cases.registered` for a created case). Raises what `intake_event` raises; an IntegrityError means
    a concurrent delivery of the same event committed its claim first: roll back and try again."""
    result = _claim_or_fold(ctx, session, principal, report, grid_code, now)
    if result is None:
        result = IntakeResult(_create(ctx, session, principal, report, grid_code, now), "created")
    known: _Prefetched | None = session.info.get(_PREFETCHED)
    if known is not None:
        known.touch(principal.id, report)
    return result


def intake_event(ctx: ServiceContext, *, principal: Principal, report: MachineReport) -> IntakeResult:
    """Open, fold or recognise one machine event, in one transaction. See the module docstring.

    A new case is registered and queued for the dispatcher in the same commit as its claim, so the
    answer never waits for dispatch and a crash loses nothing. A concurrent delivery of the same
    event loses on the claim's unique key, rolls back whole and answers as a repeat.
    Raises UnknownCategory, OutsideGrid, OutsideArea (the point is outside the key's area) or
    IntakeInProgress; nothing is stored then.
    """
    grid_code = locate(ctx, report)
    now = ctx.clock.now()
    for attempt in (1, 2):
        try:
            with transaction(ctx.sessions) as session:
                result = intake_in(session, ctx, principal=principal, report=report, grid_code=grid_code, now=now)
        except IntegrityError:  # a concurrent delivery of the same event committed its claim first
            if attempt == 2:
                raise IntakeInProgress(report.source_ref) from None
            continue
        if result.outcome == "created":
            return IntakeResult(cases.registered(ctx, result.case), "created")
        return result
    raise AssertionError("unreachable")


_INSERT_CLAIM = sa.insert(IntakeClaim.__table__)  # built once: their compiled form is reused (services/cases.py)
_INSERT_MACHINE = sa.insert(MachineCase.__table__)


def _create(ctx: ServiceContext, session: Session, principal: Principal, report: MachineReport,
            grid_code: str | None, now: datetime) -> Case:
    category = reference.category(session, report.category_code)
    case = cases.register_in(session, ctx, actor=SYSTEM, source=report.source, category=category,
                             grid_code=grid_code, lat=report.lat, lon=report.lon, description=report.description,
                             address=report.address, source_event_id=report.source_ref, now=now,
                             media_urls=_merge_media([], report.media_urls), drill=report.drill)
    # The claim's unique key decides a race with a concurrent delivery of this event (IntegrityError). In a
    # batch both rows wait for the batch's end (services/grouped_writes.py); a read of their tables writes them.
    grouped_writes.write(session, _INSERT_CLAIM, [dict(
        source=report.source.value, source_ref=report.source_ref, kind="report", api_key_id=principal.id,
        case_id=case.id, outcome="created", created_at=now)])
    grouped_writes.write(session, _INSERT_MACHINE, [dict(
        case_id=case.id, api_key_id=principal.id, source=report.source.value, device_id=report.device_id,
        category_code=report.category_code, lat=report.lat, lon=report.lon, events=1, first_seen_at=now,
        last_seen_at=now, clear_pending=False)])
    welfare_calls.open_for_alarm(session, case, category, report.device_id)  # a listed elder's device: a welfare check
    dispatcher.enqueue(session, case_id=case.id, now=now)
    return case


def _accepted_category(session: Session, principal: Principal, report: MachineReport,
                       grid_code: str | None) -> Category:
    """The event's category; raises OutsideArea or UnknownCategory (an unknown or inactive one). Reads only."""
    if not area_in_scope(session, principal, grid_code):
        raise OutsideArea(grid_code or "")
    category = reference.category(session, report.category_code)
    if category is None or not category.active:
        raise UnknownCategory(report.category_code)
    return category


def refusal_of(session: Session, ctx: ServiceContext, principal: Principal, report: MachineReport) -> CaseError | None:
    """The refusal `intake_in` would meet before writing anything (a source that is no machine's, a point
    outside every grid or the key's area, an unknown or inactive category), or None. Reads only (cached
    reference data): a batch sets such events aside before it writes (services/intake_batch.py)."""
    try:
        _accepted_category(session, principal, report, locate(ctx, report))
    except CaseError as exc:
        return exc
    return None


def _claim_or_fold(ctx: ServiceContext, session: Session, principal: Principal, report: MachineReport,
                   grid_code: str | None, now: datetime) -> IntakeResult | None:
    """Answer a repeat or fold the event into an open case, within `session`; None for a new case."""
    ref = report.source_ref
    category = _accepted_category(session, principal, report, grid_code)
    known: _Prefetched | None = session.info.get(_PREFETCHED)
    no_claim = known is not None and known.no_claim(report)
    claim = None if no_claim else session.exec(_CLAIM, params={"source": report.source.value, "ref": ref}).first()
    if claim is not None:
        if claim.case_id is not None:
            return IntakeResult(session.get(Case, claim.case_id), "duplicate")
        # A claim without a case: left by a process of an earlier version that claimed first and died.
        opened = session.exec(select(Case).where(Case.source == report.source.value,
                                                 Case.source_event_id == ref)).first()
        if opened is not None:
            _record_created(session, claim, opened, report, principal.id, now)
            return IntakeResult(opened, "duplicate")
        if claim.lease_until is not None and claim.lease_until > now:
            raise IntakeInProgress(ref)
        session.delete(claim)
        session.flush()
    _, window_s = rule_of(session, ctx, report.category_code)
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
        if not case.drill:  # a drill is never relayed upstream
            session.add(OutboxItem(case_id=case.id, topic="case.repeated", next_attempt_at=now, created_at=now,
                                   payload={"number": case.number, "at": now.isoformat(),
                                            "report_count": count, "media_urls": media}))
        session.add(IntakeClaim(source=report.source.value, source_ref=ref, kind="report", api_key_id=principal.id,
                                case_id=case.id, outcome="folded", created_at=now))
        session.flush()
        session.refresh(case)
        return IntakeResult(case, "folded")
    return None


