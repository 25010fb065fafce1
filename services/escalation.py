"""The escalation ladder: the sweep that finds cases past their deadlines and pings up the hierarchy.

What callers may rely on:
- `sweep(ctx)` is the one scheduled job (every few seconds). It claims due cases by the indexed
  `Case.next_escalation_at` (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two OneGrid processes never
  claim the same case; SQLite: one writer at a time), takes every due step of the policy
  (services/ladder.py) exactly once per case and deadline round (a unique row per step backs this
  up), and moves `next_escalation_at` to the next step. After downtime, each missed step is taken
  once: there is no memory of ticks, only of steps.
- Each step taken publishes `CaseEscalated` (who is reminded, who gets the ping card); the groups of
  the supervisors at the step's level are collected per batch into one `GroupsPinged` (with the forum
  topic bound to the area, if any), so a channel can send several pings to one group as one message.
- Unacknowledged supervisor pings repeat every `repeat_minutes` of the policy (`CaseEscalated` with
  `repeat`); `acknowledge` stops them. A shelved case due for review publishes `ShelfReviewDue`.
- Every supervisor action checks the case lies in the supervisor's area subtree, or refuses and
  writes nothing (services/supervision_access.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.events.supervision import CaseEscalated, EscalationAcknowledged, GroupPing, GroupsPinged, ShelfReviewDue
from models.lifecycle import TERMINAL, Role, Status
from models.supervision import EscalationStep, Shelving
from models.tables import Area, Case, Person, is_reachable, reachable
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services import welfare_calls
from services.areas import area_chain, supervisor_group
from services.context import ServiceContext
from services.db import transaction
from services.ladder import ACCEPT_PHASE, HANDLE_PHASE, Ladder, Policy, Step, applies, policy_of, step_time
from services.supervision_access import NotASupervisor, SupervisionError, supervisor_and_case

log = logging.getLogger("onegrid.escalation")

_AREA_LEVEL = {"grid": 0, "street": 1, "district": 2, "city": 3}  # index in area_chain(grid)
# (group chat id, forum topic id) -> the (case, step row) pairs it is told about in one batch
Groups = dict[tuple[int, int | None], list[tuple[Case, EscalationStep]]]

# -- the sweep ----------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    claimed: int = 0
    fired: int = 0
    repeated: int = 0
    reviews: int = 0


def claim_due(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Ids of up to `limit` cases whose next escalation is due, locked for this transaction.

    PostgreSQL skips rows another sweep holds, so concurrent sweeps split the work; SQLite has
    one writer at a time (BEGIN IMMEDIATE), so there the whole sweep is serialised.
    """
    query = (select(Case.id).where(Case.next_escalation_at <= now).order_by(Case.next_escalation_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.exec(query).all())


def sweep(ctx: ServiceContext, *, limit: int | None = None) -> SweepResult:
    """Take every due escalation step and repeat every due unacknowledged ping (see module docstring)."""
    result = SweepResult()
    limit = limit or ctx.settings.escalation_batch
    policy = policy_of(ctx)
    while True:  # batches, each its own transaction, until nothing is due
        with transaction(ctx.sessions) as session:
            now = ctx.clock.now()
            ids = claim_due(session, now=now, limit=limit)
            groups: Groups = {}
            for case_id in ids:
                case = session.get(Case, case_id)
                _process(session, ctx, case, policy, now, result, groups)
            _publish_groups(session, ctx, groups)
            repeated = _repeat_due(session, ctx, policy, now, limit)
            result.claimed += len(ids)
            result.repeated += repeated
        if len(ids) < limit and repeated < limit:
            break
    if result.fired or result.repeated or result.reviews:
        ctx.on_notifications()
    return result


def _process(session: Session, ctx: ServiceContext, case: Case, policy: Policy, now: datetime, result: SweepResult,
             groups: Groups) -> None:
    status = Status(case.status)
    if status in TERMINAL or status is Status.AWAITING_VERIFICATION:
        case.next_escalation_at = None  # re-armed by whatever reopens the clock (rework resets nothing here)
        if status is Status.AWAITING_VERIFICATION:
            # Rework puts the case back in the handling phase with the same deadline: look again later.
            case.next_escalation_at = now + timedelta(minutes=30)
        session.add(case)
        return
    if status is Status.SHELVED:
        _review_shelved(session, ctx, case, now, result)
        return
    ladder = policy.for_category(case.category_code)
    taken = set(session.exec(select(EscalationStep.step).where(
        EscalationStep.case_id == case.id, EscalationStep.round == case.escalation_round)).all())
    future: list[datetime] = []
    for step in ladder.steps:
        at = step_time(case, step)
        if at is None or step.code in taken:
            continue
        if at > now:
            future.append(at)
            continue
        if not applies(step, status):
            continue  # e.g. "not accepted" steps of a case a worker already accepted: moot for good
        row = _take_step(session, case, step, at, now)
        if row is None:
            continue  # another process took it first (only possible if claims were bypassed)
        _ping(session, ctx, case, step, row, ladder, now, groups)
        result.fired += 1
    case.next_escalation_at = min(future) if future else None
    session.add(case)


def _take_step(session: Session, case: Case, step: Step, due: datetime, now: datetime) -> EscalationStep | None:
    row = EscalationStep(case_id=case.id, round=case.escalation_round, step=step.code, level=step.notify,
                         due_at=due, fired_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


# -- recipients ---------------------------------------------------------------------------------------


def _level_area(session: Session, case: Case, level: str) -> Area | None:
    chain = area_chain(session, case.grid_code) if case.grid_code else []
    index = _AREA_LEVEL[level]
    return chain[index] if index < len(chain) else (chain[-1] if chain else None)


def supervisors_at(session: Session, case: Case, level: str) -> list[Person]:
    """Active supervisors of the case's area at `level`, or the nearest level above that has any."""
    chain = area_chain(session, case.grid_code) if case.grid_code else []
    for area in chain[_AREA_LEVEL[level]:]:
        people = session.exec(select(Person).where(
            Person.area_code == area.code, Person.active.is_(True), reachable(),
            Person.deleted_at.is_(None)).order_by(Person.id)).all()
        found = [p for p in people if p.has_role(Role.SUPERVISOR)]
        if found:
            return found
    return []


def holders(session: Session, case: Case) -> list[Person]:
    """Workers who hold a task of the case, or (nobody holding) who have it on offer."""
    held = session.exec(select(Person).join(CaseTask, CaseTask.assignee_id == Person.id).where(
        CaseTask.case_id == case.id, CaseTask.status == TaskStatus.ACCEPTED)).all()
    if held:
        return list(held)
    return list(session.exec(select(Person).join(WorkOffer, WorkOffer.worker_id == Person.id).where(
        WorkOffer.case_id == case.id, WorkOffer.status == OfferStatus.OPEN)).all())


def _group_target(session: Session, case: Case, level: str) -> tuple[int, int | None] | None:
    area = _level_area(session, case, level)
    return None if area is None else supervisor_group(session, area.code, grid_code=case.grid_code)


# -- pings --------------------------------------------------------------------------------------------


def _ping(session: Session, ctx: ServiceContext, case: Case, step: Step, row: EscalationStep, ladder: Ladder,
          now: datetime, groups: Groups) -> None:
    if step.notify == "worker":
        people = holders(session, case)
        row.notified_person_ids = [p.id for p in people]
        # Nobody to remind: the grid's supervisors must know instead.
        supervisors = [] if people else supervisors_at(session, case, "grid")
        _publish_ping(session, ctx, case, step, row, workers=people, supervisors=supervisors,
                      final=step == ladder.steps[-1])
        session.add(row)
        return
    if step.notify == "committee":  # the 居委会 of a welfare check's street: told, nothing to acknowledge
        welfare_calls.escalate_now(session, ctx, case, step.code, supervisors=False)
        session.add(row)
        return
    people = supervisors_at(session, case, step.notify)
    _publish_ping(session, ctx, case, step, row, supervisors=people, final=step == ladder.steps[-1])
    target = _group_target(session, case, step.notify)
    if target is not None:
        groups.setdefault(target, []).append((case, row))
        row.notified_chat_ids = [target[0]]
    if ladder.repeat_minutes:
        row.next_repeat_at = now + timedelta(minutes=ladder.repeat_minutes)
    if not people and target is None:
        log.warning("case %s: step %s has nobody to tell at level %s", case.number, step.code, step.notify)
    session.add(row)


def _publish_ping(session: Session, ctx: ServiceContext, case: Case, step: Step, row: EscalationStep, *,
                  workers: list[Person] = (), supervisors: list[Person] = (), repeat: int = 0,
                  final: bool = False) -> None:
    if not workers:
        row.notified_person_ids = sorted(set(row.notified_person_ids or []) | {p.id for p in supervisors})
    ctx.publish(session, CaseEscalated(
        case_id=case.id, case_number=case.number, step_id=row.id or 0, step_code=step.code, after=step.after,
        level=step.notify, repeat=repeat, final=final, worker_ids=tuple(p.id for p in workers),
        supervisor_ids=tuple(p.id for p in supervisors)))


def _publish_groups(session: Session, ctx: ServiceContext, groups: Groups) -> None:
    if not groups:
        return
    ctx.publish(session, GroupsPinged(groups=tuple(
        GroupPing(chat_id=chat_id, message_thread_id=thread_id, items=tuple((case.id, row.id) for case, row in items))
        for (chat_id, thread_id), items in groups.items())))


def _repeat_due(session: Session, ctx: ServiceContext, policy: Policy, now: datetime, limit: int) -> int:
    query = (select(EscalationStep).where(EscalationStep.next_repeat_at <= now,
                                          EscalationStep.acknowledged_at.is_(None))
             .order_by(EscalationStep.next_repeat_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.exec(query).all()
    groups: Groups = {}
    for row in rows:
        case = session.get(Case, row.case_id)
        ladder = policy.for_category(case.category_code)
        step = next((s for s in ladder.steps if s.code == row.step), None)
        status = Status(case.status)
        if (step is None or not ladder.repeat_minutes or row.round != case.escalation_round
                or not applies(step, status)):
            row.next_repeat_at = None  # the reason for the ping is gone
            session.add(row)
            continue
        row.repeats += 1
        # Catch up once: the next reminder counts from now, not from the missed time.
        row.next_repeat_at = now + timedelta(minutes=ladder.repeat_minutes)
        people = [p for p in (session.get(Person, pid) for pid in row.notified_person_ids) if p is not None
                  and p.active and is_reachable(p)]
        _publish_ping(session, ctx, case, step, row, supervisors=people, repeat=row.repeats,
                      final=step == ladder.steps[-1])
        target = _group_target(session, case, row.level)
        if target is not None:
            groups.setdefault(target, []).append((case, row))
        session.add(row)
    _publish_groups(session, ctx, groups)
    return len(rows)


def _review_shelved(session: Session, ctx: ServiceContext, case: Case, now: datetime, result: SweepResult) -> None:
    shelf = session.exec(select(Shelving).where(Shelving.case_id == case.id, Shelving.unshelved_at.is_(None))
                         .order_by(Shelving.id.desc())).first()
    case.next_escalation_at = None
    session.add(case)
    if shelf is None or shelf.review_pinged_at is not None or shelf.review_at > now:
        if shelf is not None and shelf.review_at > now:
            case.next_escalation_at = shelf.review_at
        return
    shelf.review_pinged_at = now
    session.add(shelf)
    ctx.publish(session, ShelfReviewDue(case_id=case.id, case_number=case.number, shelving_id=shelf.id,
                                        supervisor_ids=tuple(p.id for p in supervisors_at(session, case, "grid"))))
    result.reviews += 1


# -- acknowledging ------------------------------------------------------------------------------------


def acknowledge(ctx: ServiceContext, *, case_id: int, step_id: int, supervisor_id: int) -> str:
    """Stop the repeats of one ping (and of every earlier unacknowledged ping of the case). Returns the case number."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        now = ctx.clock.now()
        session.execute(sa.update(EscalationStep).where(
            EscalationStep.case_id == case.id, EscalationStep.id <= step_id,
            EscalationStep.acknowledged_at.is_(None)).values(
            acknowledged_at=now, acknowledged_by_id=supervisor.id, next_repeat_at=None))
        ctx.publish(session, EscalationAcknowledged(case_id=case.id, case_number=case.number, step_id=step_id,
                                                    supervisor_id=supervisor.id))
        return case.number


# -- queries shared with the digest and the KPIs --------------------------------------------------------


def subtree_grids(session: Session, area_code: str) -> list[str]:
    """Codes of `area_code` and every area below it."""
    rows = session.exec(select(Area.code, Area.parent_code)).all()
    children: dict[str | None, list[str]] = {}
    for code, parent in rows:
        children.setdefault(parent, []).append(code)
    out, stack = [], [area_code]
    while stack:
        code = stack.pop()
        out.append(code)
        stack.extend(children.get(code, []))
    return out


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


# Imported from here by the digest and the KPIs (services/digest.py, services/kpi.py).
__all__ = ["ACCEPT_PHASE", "HANDLE_PHASE", "NotASupervisor", "SupervisionError", "SweepResult", "acknowledge",
           "claim_due", "holders", "p90", "policy_of", "step_time", "subtree_grids", "supervisors_at", "sweep"]
