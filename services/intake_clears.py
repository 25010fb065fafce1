"""Clearing machine cases at their source: the category's clear rule, now or once it can act.

What callers may rely on: `clear_case` applies the category's clear rule (`models.api.ClearRule`)
through the one clear-at-source rule of `services.verification` (SYSTEM actor): a case awaiting
verification is closed with its proofs approved and the supervisors' cards and workers told;
under CLOSE a case nobody started on is cancelled as resolved at source, its offers withdrawn and
tasks cancelled. A clear that cannot act yet (the case is being handled; its worker is told) is
kept and applied by `apply_pending_clears` once the case awaits verification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from models.api import ClearRule, MachineCase
from models.lifecycle import TERMINAL, LifecycleError, Status
from models.tables import Case
from services.api_keys import Principal, area_in_scope
from services.cases import CaseError, CaseNotFound, StaleCase
from services.context import ServiceContext
from services.db import transaction
from services.intake_rules import rule_of
from services.verification import SourceClear, clear_at_source_in, clear_reason

log = logging.getLogger(__name__)


class NotMachineCase(CaseError):
    """Only cases opened through machine intake can be cleared by their source."""



@dataclass(frozen=True)
class ClearResult:
    case: Case
    outcome: str  # verified | cancelled | pending | recorded | already_closed



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
                rule, _ = rule_of(session, ctx, case.category_code)
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
                rule, _ = rule_of(session, ctx, case.category_code)
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

