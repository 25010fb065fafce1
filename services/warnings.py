"""Warnings (预警) to an area: every on-duty worker acknowledges; the rest are reminded.

What callers may rely on:
- `issue_warning` stores the warning and one `WarningRecipient` per active, reachable, on-duty worker
  of the area's subtree, and publishes `WarningIssued` (priority delivery: wiring.PRIORITIES) in one
  transaction. A supervisor may warn only their own area or an area below it; the upstream (by API,
  `issued_by_id=None`) any area in its key's scope (checked by the caller).
- `acknowledge` records the first press of a worker's own button; a second press changes nothing.
- `remind_due` (the scheduled job) reminds, every `warning_reminder_minutes`, each recipient who has
  not acknowledged, and tells the area's supervisors who they are (`WarningReminderDue`), at most
  `warning_reminder_max` times; a warning everybody acknowledged, or one ended, is never reminded.
- A drill warning (`drill=True`) flows the same way; its messages are labelled as a drill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.campaigns import WARNINGS, AreaWarning, WarningAction, WarningLevel, WarningRecipient, WarningStatus
from models.events.campaigns import WarningAcknowledged, WarningIssued, WarningReminderDue
from models.lifecycle import Role
from models.tables import Area, Person, reachable
from services.context import ServiceContext
from services.db import transaction
from services.escalation import subtree_grids

MAX_TEXT = 2000


class WarningError(Exception):
    """A warning could not be issued or changed; nothing was stored."""


class UnknownArea(WarningError):
    pass


class OutsideYourArea(WarningError):
    pass


class EmptyText(WarningError):
    pass


class NotYourWarning(WarningError):
    pass


class WarningNotFound(WarningError):
    pass


@dataclass(frozen=True)
class IssuedWarning:
    id: int
    recipients: int


@dataclass(frozen=True)
class WarningState:
    """A warning and who has not acknowledged it (names), for /warnings and the API."""

    id: int
    area_code: str
    level: WarningLevel
    text: str
    drill: bool
    status: WarningStatus
    issued_at: datetime
    total: int
    acknowledged: int
    pending_names: tuple[str, ...]


def in_scope(session: Session, supervisor_id: int, area_code: str) -> bool:
    """Whether `area_code` is the supervisor's area or below it."""
    person = session.get(Person, supervisor_id)
    if person is None or not person.active or not person.has_role(Role.SUPERVISOR) or not person.area_code:
        return False
    return area_code in subtree_grids(session, person.area_code)


def on_duty_workers(session: Session, area_code: str) -> list[Person]:
    """Active, reachable, on-duty workers whose area is `area_code` or below it, by id."""
    codes = subtree_grids(session, area_code)
    people = session.exec(select(Person).where(
        Person.area_code.in_(codes), Person.active.is_(True), Person.on_duty.is_(True), Person.deleted_at.is_(None),
        reachable()).order_by(Person.id)).all()
    return [p for p in people if p.has_role(Role.WORKER)]


def issue_warning(ctx: ServiceContext, *, area_code: str, level: WarningLevel, text: str, drill: bool = False,
                  issued_by_id: int | None = None) -> IssuedWarning:
    """Issue a warning to `area_code` (see the module docstring)."""
    text = text.strip()
    if not text:
        raise EmptyText()
    with transaction(ctx.sessions) as session:
        if session.exec(select(Area.id).where(Area.code == area_code)).first() is None:
            raise UnknownArea(area_code)
        if issued_by_id is not None and not in_scope(session, issued_by_id, area_code):
            raise OutsideYourArea(area_code)
        now = ctx.clock.now()
        warning = AreaWarning(area_code=area_code, level=level, text=text[:MAX_TEXT], drill=drill,
                              status=WarningStatus.ACTIVE, issued_by_id=issued_by_id, issued_at=now,
                              next_reminder_at=now + timedelta(minutes=ctx.settings.warning_reminder_minutes))
        session.add(warning)
        session.flush()
        rows = [WarningRecipient(warning_id=warning.id, worker_id=w.id, sent_at=now)
                for w in on_duty_workers(session, area_code)]
        session.add_all(rows)
        session.flush()
        if not rows:
            warning.next_reminder_at = None
        ctx.publish(session, WarningIssued(warning_id=warning.id, area_code=area_code, level=level, drill=drill,
                                           recipient_ids=tuple(r.id for r in rows)))
        result = IssuedWarning(warning.id, len(rows))
    ctx.on_notifications()
    return result


def acknowledge(ctx: ServiceContext, *, recipient_id: int, worker_id: int, message_id: int | None) -> bool:
    """Record the worker's acknowledgement; False when it was already recorded (nothing changes)."""
    with transaction(ctx.sessions) as session:
        row = session.get(WarningRecipient, recipient_id)
        if row is None or row.worker_id != worker_id:
            raise NotYourWarning(str(recipient_id))
        now = ctx.clock.now()
        done = session.execute(sa.update(WarningRecipient).where(
            WarningRecipient.id == recipient_id, WarningRecipient.acknowledged_at.is_(None)
        ).values(acknowledged_at=now)).rowcount
        if done != 1:
            return False
        warning = session.get(AreaWarning, row.warning_id)
        ctx.publish(session, WarningAcknowledged(warning_id=warning.id, recipient_id=recipient_id, worker_id=worker_id,
                                                 message_id=message_id, drill=warning.drill))
    ctx.on_notifications()
    return True


def _state(session: Session, warning: AreaWarning) -> WarningState:
    rows = session.exec(select(WarningRecipient).where(WarningRecipient.warning_id == warning.id)
                        .order_by(WarningRecipient.id)).all()
    pending = [session.get(Person, r.worker_id) for r in rows if r.acknowledged_at is None]
    return WarningState(warning.id, warning.area_code, WarningLevel(warning.level), warning.text, warning.drill,
                        WarningStatus(warning.status), warning.issued_at, len(rows),
                        sum(1 for r in rows if r.acknowledged_at is not None),
                        tuple(p.display_name for p in pending if p is not None))


def warning_state(ctx: ServiceContext, *, warning_id: int) -> WarningState:
    with ctx.sessions() as session:
        warning = session.get(AreaWarning, warning_id)
        if warning is None:
            raise WarningNotFound(str(warning_id))
        return _state(session, warning)


def active_warnings(ctx: ServiceContext, *, supervisor_id: int) -> list[WarningState]:
    """The active warnings of the supervisor's area (and below), newest first."""
    with ctx.sessions() as session:
        person = session.get(Person, supervisor_id)
        if person is None or not person.area_code or not person.has_role(Role.SUPERVISOR):
            raise OutsideYourArea("")
        codes = subtree_grids(session, person.area_code)
        rows = session.exec(select(AreaWarning).where(AreaWarning.status == WarningStatus.ACTIVE,
                                                      AreaWarning.area_code.in_(codes))
                            .order_by(AreaWarning.id.desc()).limit(20)).all()
        return [_state(session, w) for w in rows]


def end_warning(ctx: ServiceContext, *, warning_id: int, supervisor_id: int | None = None) -> WarningState:
    """End an active warning: no more reminders. Ending one already ended changes nothing."""
    with transaction(ctx.sessions) as session:
        warning = session.get(AreaWarning, warning_id)
        if warning is None:
            raise WarningNotFound(str(warning_id))
        if supervisor_id is not None and not in_scope(session, supervisor_id, warning.area_code):
            raise OutsideYourArea(warning.area_code)
        if WARNINGS.allowed(WarningStatus(warning.status), WarningAction.END):
            warning.status = WARNINGS.step(WarningStatus(warning.status), WarningAction.END)
            warning.ended_at, warning.next_reminder_at = ctx.clock.now(), None
            session.add(warning)
        return _state(session, warning)


def remind_due(ctx: ServiceContext) -> int:
    """Remind every warning whose reminder is due (see the module docstring); how many were reminded."""
    reminded = 0
    with transaction(ctx.sessions) as session:
        now = ctx.clock.now()
        due = session.exec(select(AreaWarning).where(
            AreaWarning.status == WarningStatus.ACTIVE, AreaWarning.next_reminder_at.is_not(None),
            AreaWarning.next_reminder_at <= now).order_by(AreaWarning.id).with_for_update(skip_locked=True)).all()
        for warning in due:
            rows = session.exec(select(WarningRecipient).where(WarningRecipient.warning_id == warning.id)).all()
            pending = [r for r in rows if r.acknowledged_at is None]
            if not pending:
                warning.next_reminder_at = None
                session.add(warning)
                continue
            for row in pending:
                row.reminders += 1
                session.add(row)
            warning.reminders += 1
            more = warning.reminders < ctx.settings.warning_reminder_max
            warning.next_reminder_at = now + timedelta(minutes=ctx.settings.warning_reminder_minutes) if more else None
            session.add(warning)
            ctx.publish(session, WarningReminderDue(
                warning_id=warning.id, area_code=warning.area_code, drill=warning.drill,
                pending_recipient_ids=tuple(r.id for r in pending), acknowledged=len(rows) - len(pending),
                total=len(rows)))
            reminded += 1
    if reminded:
        ctx.on_notifications()
    return reminded
