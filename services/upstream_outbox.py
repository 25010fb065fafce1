"""The relay's side of the outbox: claim due rows, build their events, record how each send went.

Set-based, so a round of hundreds of rows costs a handful of statements: one SELECT of the due
rows, one conditional UPDATE that claims them (a lease on `next_attempt_at`), three reads that build
all their events, and one transaction that records every outcome of a batch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from models.lifecycle import Role
from models.tables import Case, CaseEvent, OutboxItem, OutboxStatus
from services.bulk import update_many
from services.context import ServiceContext
from services.db import transaction

CLAIM_LEASE = timedelta(seconds=120)
MAX_ERROR = 2000
_UNSENT = (OutboxStatus.PENDING.value, OutboxStatus.DEAD.value, OutboxStatus.FAILED.value)


@dataclass(frozen=True)
class Claimed:
    """An outbox row this relay holds the lease of, with the event to send for it."""

    outbox_id: int
    case_id: int | None
    attempts: int
    event: dict[str, Any]
    needs_external_id: bool  # the case has no id at the upstream yet: learn it from the answer


@dataclass(frozen=True)
class Outcome:
    """How one claimed row's send went: sent, or not (then `retry_in` seconds, or dead, or released)."""

    outbox_id: int
    sent: bool = False
    remote_id: str | None = None  # the upstream's id of the case, from a sent row's answer
    error: str | None = None
    attempts: int = 0  # the row's tries after this one
    dead: bool = False
    retry_in: float = 0.0  # seconds until the next try (a row released untried: 0, attempts unchanged)


def event_id(instance_id: str, outbox_id: int) -> str:
    return f"{instance_id}:{outbox_id}"


def due_heads(session: Session, now: datetime, limit: int) -> list[OutboxItem]:
    """Pending rows due by `now` that head their case (no earlier unsent row), oldest first."""
    earlier = aliased(OutboxItem)
    blocked = (
        select(earlier.id)
        .where(earlier.case_id == OutboxItem.case_id, earlier.id < OutboxItem.id, earlier.status.in_(_UNSENT))
        .exists()
    )
    return list(session.exec(
        select(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.PENDING.value, OutboxItem.next_attempt_at <= now, ~blocked)
        .order_by(OutboxItem.id)
        .limit(limit)
    ))


def due_runs(session: Session, now: datetime, limit: int) -> list[tuple[int, int | None, int]]:
    """(id, case_id, attempts) of due pending rows whose earlier rows of their case are sent or due too.

    Oldest first; for each case a run of consecutive rows starting at its oldest unsent one, so the
    rows of one case can go in one batch, in order. A dead letter or a row waiting out its backoff
    holds back the later rows of its case.
    """
    # One pass over the blockers (dead letters, rows in backoff or leased to a relay: few), joined by
    # case, instead of a correlated lookup per pending row: linear in the outbox, whatever the planner's
    # statistics say.
    table = OutboxItem.__table__
    blockers = (
        sa.select(table.c.case_id, sa.func.min(table.c.id).label("first_id"))
        .where(table.c.case_id.is_not(None),
               sa.or_(table.c.status.in_((OutboxStatus.DEAD.value, OutboxStatus.FAILED.value)),
                      sa.and_(table.c.status == OutboxStatus.PENDING.value, table.c.next_attempt_at > now)))
        .group_by(table.c.case_id)
        .cte("blockers")
    )
    return [tuple(r) for r in session.execute(
        sa.select(table.c.id, table.c.case_id, table.c.attempts)
        .select_from(table.outerjoin(blockers, blockers.c.case_id == table.c.case_id))
        .where(table.c.status == OutboxStatus.PENDING.value, table.c.next_attempt_at <= now,
               sa.or_(blockers.c.first_id.is_(None), table.c.id < blockers.c.first_id))
        .order_by(table.c.id)
        .limit(limit)
    )]


def claim(ctx: ServiceContext, now: datetime, limit: int) -> list[Claimed]:
    """Claim up to `limit` due rows (a lease, so no other relay sends them meanwhile) and build their events."""
    table = OutboxItem.__table__
    with transaction(ctx.sessions) as session:
        due = due_runs(session, now, limit)
        if not due:
            return []
        won = set(session.execute(
            sa.update(table).where(table.c.id.in_([row[0] for row in due]),
                                   table.c.status == OutboxStatus.PENDING.value, table.c.next_attempt_at <= now)
            .values(next_attempt_at=now + CLAIM_LEASE).returning(table.c.id)).scalars())
        # Another relay took a row first: keep each case's rows only up to it, and hand the rest back.
        kept, lost_cases, released = [], set(), []
        for outbox_id, case_id, attempts in due:
            if (case_id is not None and case_id in lost_cases) or outbox_id not in won:
                if outbox_id in won:
                    released.append(outbox_id)
                if case_id is not None:
                    lost_cases.add(case_id)
                continue
            kept.append((outbox_id, case_id, attempts))
        if released:
            session.execute(sa.update(table).where(table.c.id.in_(released)).values(next_attempt_at=now))
        return build_events(session, kept, ctx.settings.instance_id)


def _snapshot(case: Any) -> dict[str, Any]:
    return {
        "number": case.number, "source": str(case.source), "category_code": case.category_code,
        "lat": case.lat, "lon": case.lon, "description": case.description, "address": case.address,
        "media_urls": list(case.media_urls or []), "report_count": case.report_count,
        "created_at": case.created_at.isoformat() if case.created_at else None,
    }


def build_events(session: Session, rows: list[tuple[int, int | None, int]], instance_id: str) -> list[Claimed]:
    """The JSON documents sent upstream for `rows` (id, case_id, attempts): three reads for all of them."""
    if not rows:
        return []
    ids = [row[0] for row in rows]
    case_ids = sorted({row[1] for row in rows if row[1] is not None})
    outbox = OutboxItem.__table__
    found = {r.id: r for r in session.execute(sa.select(outbox.c.id, outbox.c.payload, outbox.c.topic)
                                               .where(outbox.c.id.in_(ids)))}
    # A case's event number (seq) is its row's rank among the case's outbox rows.
    rank: dict[int, int] = {}
    counted: dict[int, int] = defaultdict(int)
    if case_ids:
        for outbox_id, case_id in session.execute(sa.select(outbox.c.id, outbox.c.case_id)
                                                  .where(outbox.c.case_id.in_(case_ids)).order_by(outbox.c.id)):
            counted[case_id] += 1
            rank[outbox_id] = counted[case_id]
    table = Case.__table__
    snapshots = {r.id: r for r in session.execute(sa.select(
        table.c.id, table.c.number, table.c.source, table.c.category_code, table.c.lat, table.c.lon,
        table.c.description, table.c.address, table.c.media_urls, table.c.report_count, table.c.created_at,
        table.c.external_id).where(table.c.id.in_(case_ids)))} if case_ids else {}
    roles: dict[tuple, str] = {}
    if case_ids:
        ev = CaseEvent.__table__
        for case_id, action, to_status, at, role in session.execute(
                sa.select(ev.c.case_id, ev.c.action, ev.c.to_status, ev.c.at, ev.c.actor_role)
                .where(ev.c.case_id.in_(case_ids)).order_by(ev.c.id)):
            roles.setdefault((case_id, str(action), str(to_status), at), str(role))
    out, asked = [], set()
    for outbox_id, case_id, attempts in rows:
        row = found[outbox_id]
        payload, case = row.payload, snapshots.get(case_id)
        out.append(Claimed(outbox_id, case_id, attempts, {
            "event_id": event_id(instance_id, outbox_id),
            "origin": instance_id,
            "topic": row.topic,
            "seq": rank.get(outbox_id, 1),
            "actor_role": _actor_role(roles, case_id, row.topic, payload),
            "payload": payload,
            "case": _snapshot(case) if case is not None else None,
        }, needs_external_id=case is not None and case.external_id is None and case_id not in asked))
        if case is not None:
            asked.add(case_id)
    return out


def _actor_role(roles: dict[tuple, str], case_id: int | None, topic: str, payload: dict[str, Any]) -> str:
    if not topic.startswith("case.") or "action" not in payload:
        return Role.SYSTEM.value
    at = datetime.fromisoformat(payload["at"])
    return roles.get((case_id, payload["action"], payload["to"], at), Role.SYSTEM.value)


def settle(ctx: ServiceContext, outcomes: list[Outcome], claimed: dict[int, Claimed]) -> None:
    """Record every outcome of a send in one transaction: sent rows, retries, dead letters, releases.

    A sent row also gives its case the upstream's id where it had none (`Case.external_id`).
    """
    now = ctx.clock.now()
    table = OutboxItem.__table__
    sent = [o for o in outcomes if o.sent]
    rest = [o for o in outcomes if not o.sent]
    with transaction(ctx.sessions) as session:
        if sent:
            session.execute(sa.update(table).where(table.c.id.in_([o.outbox_id for o in sent])).values(
                status=OutboxStatus.SENT.value, sent_at=now, attempts=table.c.attempts + 1, last_error=None))
            remote = {}
            for o in sent:
                row = claimed[o.outbox_id]
                if o.remote_id and row.case_id is not None and row.needs_external_id:
                    remote.setdefault(row.case_id, str(o.remote_id)[:200])
            # Only cases that had none when claimed: an id already learnt is never overwritten.
            update_many(session, Case.__table__, [{"id": k, "external_id": v} for k, v in remote.items()],
                        match=("id",))
        update_many(session, table, [
            {"id": o.outbox_id, "attempts": o.attempts, "last_error": (o.error or "")[:MAX_ERROR] or None,
             "status": OutboxStatus.DEAD.value if o.dead else OutboxStatus.PENDING.value,
             "next_attempt_at": now + timedelta(seconds=o.retry_in)} for o in rest], match=("id",))
