"""Receiving a downstream OneGrid's events: each of its cases is mirrored here.

What callers may rely on: `apply_downstream_event` applies the other instance's events through
the lifecycle, once each and in order (`seq`), and writes nothing when it refuses one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.api import SyncLink
from models.lifecycle import Action, Actor, LifecycleError, Role, Status, open_case, transition
from models.tables import Case, CaseSource, Category
from services import cases
from services.api_keys import Principal, area_in_scope
from services.cases import CaseError, OutsideGrid, UnknownCategory
from services.context import ServiceContext
from services.db import transaction


class SyncRefused(CaseError):
    """The event cannot be applied as it stands; `retryable` says whether sending it later may work."""

    retryable = False


class OutOfOrder(SyncRefused):
    retryable = True


class Diverged(SyncRefused):
    """The mirror's state does not allow this event (the two instances disagree)."""

    retryable = True


class NotVisible(SyncRefused):
    """The case lies outside the sender's area."""


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time that carries a timezone, in UTC; ValueError otherwise."""
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("times must carry a timezone")
    return when.astimezone(UTC)


def apply_downstream_event(ctx: ServiceContext, *, principal: Principal, event: dict[str, Any]) -> dict[str, Any]:
    """Apply one event of a downstream OneGrid to its mirror case here; idempotent by (origin, number, seq).

    Returns ``{"service_request_id", "number", "status", "duplicate"}``. Raises SyncRefused
    subclasses, UnknownCategory, OutsideGrid or ValueError (malformed event); nothing is written then.
    """
    origin = str(event.get("origin") or "")[:64]
    topic = str(event.get("topic") or "")
    seq = event.get("seq")
    snapshot = event.get("case") or {}
    payload = event.get("payload") or {}
    number = str(snapshot.get("number") or payload.get("number") or "")[:64]
    if not origin or not number or not isinstance(seq, int) or seq < 1 or not topic.startswith("case."):
        raise ValueError("an event needs origin, case number, topic case.* and seq ≥ 1")
    with transaction(ctx.sessions) as session:
        link = session.exec(select(SyncLink).where(SyncLink.origin == origin, SyncLink.origin_number == number)).first()
        if link is not None:
            case = session.get(Case, link.case_id)
            if not area_in_scope(session, principal, case.grid_code):
                raise NotVisible(number)
            if seq <= link.last_seq:
                return _sync_answer(case, duplicate=True)
            if seq != link.last_seq + 1:
                raise OutOfOrder(f"{number}: expected event {link.last_seq + 1}, got {seq}")
        elif topic != "case.report":
            raise OutOfOrder(f"{number}: no mirror yet; its report must come first")
        if link is None:
            case = _create_mirror(session, ctx, principal, snapshot, payload, event)
            session.add(SyncLink(origin=origin, origin_number=number, case_id=case.id, api_key_id=principal.id,
                                 last_seq=seq, updated_at=ctx.clock.now()))
        else:
            _apply_to_mirror(session, ctx, case, topic, payload, str(event.get("actor_role") or "system"))
            link.last_seq = seq
            link.updated_at = ctx.clock.now()
            session.add(link)
        session.flush()
        session.refresh(case)
        answer = _sync_answer(case, duplicate=False)
    ctx.on_notifications()
    return answer


def _sync_answer(case: Case, *, duplicate: bool) -> dict[str, Any]:
    return {"service_request_id": str(case.id), "number": case.number, "status": str(case.status),
            "duplicate": duplicate}


def _create_mirror(session: Session, ctx: ServiceContext, principal: Principal, snapshot: dict[str, Any],
                   payload: dict[str, Any], event: dict[str, Any]) -> Case:
    try:
        lat, lon = float(snapshot["lat"]), float(snapshot["lon"])
        source = CaseSource(snapshot.get("source") or CaseSource.UPSTREAM)
        at = parse_time(payload.get("at") or snapshot.get("created_at"))
        role = Role(event.get("actor_role") or "system")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed case in event: {exc}") from None
    category_code = str(snapshot.get("category_code") or "")
    category = session.exec(select(Category).where(Category.code == category_code)).first()
    if category is None:
        raise UnknownCategory(category_code)
    grid_code = ctx.grid_map.lookup(lon, lat) if ctx.grid_map is not None else None
    if ctx.grid_map is not None and grid_code is None:
        raise OutsideGrid(f"{lat:.6f},{lon:.6f}")
    if not area_in_scope(session, principal, grid_code):
        raise NotVisible(str(snapshot.get("number")))
    case = Case(
        number=cases.next_case_number(session, prefix=ctx.case_prefix, now=at, timezone=ctx.timezone),
        source=source, category_code=category_code, description=str(snapshot.get("description") or "")[:4000],
        lat=lat, lon=lon, address=(str(snapshot["address"])[:500] if snapshot.get("address") else None),
        media_urls=[str(u)[:2000] for u in (snapshot.get("media_urls") or [])][:20],
        # Counters start fresh: the origin's later `case.repeated` events bring them up to date in order.
        grid_code=grid_code, status=Status.REPORTED, report_count=1,
        created_at=at, updated_at=at,
    )
    session.add(case)
    session.flush()
    cases.record(session, case, open_case(Actor(role), at=at))
    return case


def _apply_to_mirror(session: Session, ctx: ServiceContext, case: Case, topic: str, payload: dict[str, Any],
                     actor_role: str) -> None:
    if topic == "case.repeated":
        session.execute(sa.update(Case).where(Case.id == case.id).values(
            report_count=int(payload.get("report_count") or case.report_count),
            media_urls=[str(u)[:2000] for u in (payload.get("media_urls") or case.media_urls or [])][:20]))
        return
    try:
        action, role, at = Action(payload["action"]), Role(actor_role), parse_time(payload["at"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"malformed event: {exc}") from None
    try:
        # The origin's people are not known here: the lifecycle judges the role, not the person.
        tr = transition(cases.facts_of(case), action, Actor(role), at=at, note=payload.get("note"))
    except LifecycleError as exc:
        raise Diverged(f"{case.number}: {exc}") from None
    cases.change_status(session, ctx, case, tr)

