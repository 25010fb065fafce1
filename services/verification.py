"""Verification (核查) and closure (结案): the proof card, approve, reject for rework, and clears from the source.

What callers may rely on:
- When a case awaits verification, the nearest supervisors of its area who did not handle any
  of its tasks each get a proof card (`VerificationRequested`: the text with Approve / Reject first,
  then the proof photos); with no such supervisor an `Escalation` (NO_VERIFIER) is recorded.
- `approve` / `reject` are one transaction each and refuse (nothing written) anyone who is not an
  active supervisor of the case's area, anyone who handled a task of the case (never verify your
  own work), and a card made for an earlier round (`expected_version`).
- Approve closes the case (`ClosureApproved`); reject sends it back for rework (返工) with the reason
  (`ClosureRejected`): every task goes back to the worker who did it, who is told why. Every open card
  of the case is marked decided (its id is in the event, so the channel edits it to say who decided
  what), so no two supervisors decide the same round.
- `close_from_source`: a case opened by a camera or sensor may be closed by its source. The rule:
  awaiting verification → approved by the system (closed, `ClosedBySource`); nobody has accepted it
  yet → closed as cleared at source (自动结案; offers withdrawn); a worker is on it → kept, the worker
  is told (`SourceReportsGone`). `clear_at_source_in` is the same rule inside the caller's transaction
  (machine intake's clear).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, func, select

from models.events.supervision import (
    ClosedBySource,
    ClosureApproved,
    ClosureRejected,
    SourceReportsGone,
    VerificationRequested,
)
from models.events.work import RetractReason
from models.lifecycle import TERMINAL, Action, Actor, Role, SelfVerification, Status
from models.tables import Case, CaseSource, Person
from models.work import (
    CaseTask,
    Completion,
    Escalation,
    EscalationReason,
    OfferStatus,
    TaskStatus,
    VerificationRequest,
    VerificationStatus,
    WorkOffer,
)
from models.work_lifecycles import COMPLETIONS, TASKS, CompletionAction, OfferAction, TaskAction, guard
from services import dispatch
from services.cases import CaseNotFound, StaleCase, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.verification_card import ProofCard, handled_by, proof_card

MAX_REASON = 500

class VerificationError(Exception):
    """A refusal the supervisor can be told about; nothing was written."""


class NotASupervisor(VerificationError):
    pass


class OutsideYourArea(VerificationError):
    pass


class OwnWork(VerificationError):
    """The supervisor handled a task of this case; someone else must verify it."""


class CardOutdated(VerificationError):
    """The case changed since the card was made (decided already, or a new round)."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


class ReasonRequired(VerificationError):
    pass


class NotMachineSource(VerificationError):
    pass



# -- sending cards ------------------------------------------------------------------------------------


def open_request(session: Session, ctx: ServiceContext, case: Case, supervisor: Person, *,
                 from_queue: bool = False) -> VerificationRequest:
    """Record an open card of `case` for `supervisor` and publish it (the channel sends the card)."""
    request = VerificationRequest(case_id=case.id, supervisor_id=supervisor.id, case_version=case.version,
                                  status=VerificationStatus.OPEN, created_at=ctx.clock.now())
    session.add(request)
    session.flush()
    ctx.publish(session, VerificationRequested(case_id=case.id, case_number=case.number, case_version=case.version,
                                               supervisor_id=supervisor.id, request_id=request.id,
                                               from_queue=from_queue))
    return request


def request_verification(session: Session, ctx: ServiceContext, case: Case) -> list[VerificationRequest]:
    """Send the proof card of `case` (now awaiting verification) to the supervisors who may verify it."""
    handlers = handled_by(session, case)
    supervisors = dispatch.supervisors_of(session, case.grid_code, exclude=handlers)
    if not supervisors:
        dispatch.escalate(session, ctx, case, None, EscalationReason.NO_VERIFIER, exclude=handlers)
        return []
    return [open_request(session, ctx, case, supervisor) for supervisor in supervisors]


def _close_cards(session: Session, ctx: ServiceContext, case: Case) -> tuple[int, ...]:
    """Mark every open card of the case decided; returns their ids (the channel edits them)."""
    now = ctx.clock.now()
    cards = session.exec(select(VerificationRequest).where(
        VerificationRequest.case_id == case.id, VerificationRequest.status == VerificationStatus.OPEN)
        .order_by(VerificationRequest.id)).all()
    for card in cards:
        card.status, card.closed_at = VerificationStatus.DECIDED, now
        session.add(card)
    return tuple(card.id for card in cards)

# -- deciding -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    case_number: str
    status: str


def _judge_rights(session: Session, supervisor_id: int, case_id: int) -> tuple[Person, Case]:
    supervisor = session.get(Person, supervisor_id)
    if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active:
        raise NotASupervisor(str(supervisor_id))
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(str(case_id))
    if not dispatch.supervises(session, supervisor, case.grid_code):
        raise OutsideYourArea(case.number)
    if supervisor.id in handled_by(session, case):
        raise OwnWork(case.number)
    return supervisor, case


def approve(ctx: ServiceContext, *, case_id: int, supervisor_id: int, expected_version: int) -> Decision:
    """Approve the proofs and close the case (结案)."""
    with transaction(ctx.sessions) as session:
        supervisor, case = _judge_rights(session, supervisor_id, case_id)
        if case.version != expected_version or case.status != Status.AWAITING_VERIFICATION:
            raise CardOutdated(case.number, case.status)
        try:
            apply_action_in(session, ctx, case, action=Action.APPROVE, actor=Actor(Role.SUPERVISOR, supervisor.id))
        except SelfVerification as exc:
            raise OwnWork(case.number) from exc
        except StaleCase as exc:
            raise CardOutdated(case.number, "changed") from exc
        _decide_completions(session, ctx, case, CompletionAction.APPROVE, supervisor.id, None)
        card_ids = _close_cards(session, ctx, case)
        ctx.publish(session, ClosureApproved(case_id=case.id, case_number=case.number, supervisor_id=supervisor.id,
                                             card_ids=card_ids))
        result = Decision(case.number, case.status)
    ctx.on_notifications()
    return result


def reject(ctx: ServiceContext, *, case_id: int, supervisor_id: int, reason: str, expected_version: int) -> Decision:
    """Send the case back for rework (返工) with a reason; each task returns to the worker who did it."""
    note = " ".join((reason or "").split())[:MAX_REASON]
    if not note:
        raise ReasonRequired()
    with transaction(ctx.sessions) as session:
        supervisor, case = _judge_rights(session, supervisor_id, case_id)
        if case.version != expected_version or case.status != Status.AWAITING_VERIFICATION:
            raise CardOutdated(case.number, case.status)
        try:
            apply_action_in(session, ctx, case, action=Action.REJECT, actor=Actor(Role.SUPERVISOR, supervisor.id),
                            note=note)
        except StaleCase as exc:
            raise CardOutdated(case.number, "changed") from exc
        now = ctx.clock.now()
        _decide_completions(session, ctx, case, CompletionAction.REJECT, supervisor.id, note)
        sources, target = guard(TASKS, TaskAction.REWORK)
        session.execute(sa.update(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status.in_(sources), CaseTask.assignee_id.is_not(None),
        ).values(status=target, done_at=None, updated_at=now, version=CaseTask.version + 1))
        card_ids = _close_cards(session, ctx, case)
        ctx.publish(session, ClosureRejected(case_id=case.id, case_number=case.number, supervisor_id=supervisor.id,
                                             reason=note, card_ids=card_ids))
        result = Decision(case.number, case.status)
    ctx.on_notifications()
    return result


def _decide_completions(session: Session, ctx: ServiceContext, case: Case, action: CompletionAction,
                        supervisor_id: int | None, note: str | None) -> None:
    sources, target = guard(COMPLETIONS, action)
    session.execute(sa.update(Completion).where(
        Completion.case_id == case.id, Completion.status.in_(sources),
    ).values(status=target, decided_at=ctx.clock.now(), decided_by_id=supervisor_id, decision_note=note))


# -- cleared at source ---------------------------------------------------------------------------------


class SourceClear(StrEnum):
    CLOSED = "closed"  # it awaited verification: the source's word verifies it
    RESOLVED = "resolved"  # nobody had started: closed as cleared at source (自动结案)
    KEPT = "kept"  # a worker is on it: they are told and decide
    WAITING = "waiting"  # nobody had started, and the caller's rule does not cancel: left as it is
    ALREADY_ENDED = "already_ended"


# A case in these statuses is in a worker's hands even when no task row says so (an office accept).
_HANDLING = frozenset({Status.IN_PROGRESS, Status.EXTENSION_REQUESTED, Status.REWORK})


def clear_reason(note: str | None) -> str:
    """The audit note of a clear from the source: "Cleared at source", with the source's note if any."""
    return ("Cleared at source" + (f": {note.strip()}" if note and note.strip() else ""))[:MAX_REASON]


def close_from_source(ctx: ServiceContext, *, case_id: int, note: str | None = None) -> SourceClear:
    """A camera or sensor reports the problem of `case_id` gone: apply the rule in the module docstring.

    Raises NotMachineSource for cases that no machine opened, CaseNotFound for unknown ids.
    """
    reason = clear_reason(note)
    for attempt in range(3):
        try:
            with transaction(ctx.sessions) as session:
                case = session.get(Case, case_id)
                if case is None:
                    raise CaseNotFound(str(case_id))
                if CaseSource(case.source) not in (CaseSource.CAMERA, CaseSource.SENSOR):
                    raise NotMachineSource(case.number)
                outcome = clear_at_source_in(session, ctx, case, reason=reason)
        except StaleCase:
            if attempt == 2:
                raise
            continue
        ctx.on_notifications()
        return outcome
    raise AssertionError("unreachable")  # pragma: no cover


def clear_at_source_in(session: Session, ctx: ServiceContext, case: Case, *, reason: str,
                       close_unstarted: bool = True, tell_workers: bool = True) -> SourceClear:
    """`close_from_source`'s rule on `case` inside the caller's transaction (machine intake's clear uses it).

    Awaiting verification → approved by the system: completions approved, supervisors' cards
    edited, workers told (CLOSED). A worker on it → KEPT, and told when `tell_workers`. Nobody
    started → closed as cleared at source with its offers withdrawn and tasks cancelled (RESOLVED),
    or, when not `close_unstarted`, left as it is (WAITING). Terminal or shelved → ALREADY_ENDED, nothing written.
    Raises StaleCase when another writer changed the case first (the caller's transaction rolls back).
    """
    status = Status(case.status)
    system = Actor(Role.SYSTEM)
    if status in TERMINAL or status is Status.SHELVED:
        return SourceClear.ALREADY_ENDED
    if status is Status.AWAITING_VERIFICATION:
        apply_action_in(session, ctx, case, action=Action.APPROVE, actor=system, note=reason)
        _decide_completions(session, ctx, case, CompletionAction.APPROVE, None, reason)
        card_ids = _close_cards(session, ctx, case)
        ctx.publish(session, ClosedBySource(case_id=case.id, case_number=case.number, card_ids=card_ids))
        return SourceClear.CLOSED
    accepted = session.exec(select(func.count()).select_from(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]))).one()
    if accepted or status in _HANDLING:
        if tell_workers:
            ctx.publish(session, SourceReportsGone(case_id=case.id, case_number=case.number))
        return SourceClear.KEPT
    if not close_unstarted:
        return SourceClear.WAITING
    apply_action_in(session, ctx, case, action=Action.CLEAR_AT_SOURCE, actor=system, note=reason)
    end_work(session, ctx, case)
    return SourceClear.RESOLVED


def end_work(session: Session, ctx: ServiceContext, case: Case) -> None:
    """The case ended before its work was done: withdraw open offers, cancel open tasks, settle escalations."""
    now = ctx.clock.now()
    offers = session.exec(select(WorkOffer).where(WorkOffer.case_id == case.id,
                                                  WorkOffer.status == OfferStatus.OPEN)).all()
    for offer in offers:
        dispatch.retract_offer(session, ctx, offer, action=OfferAction.WITHDRAW, reason=RetractReason.CASE_ENDED)
    sources, target = guard(TASKS, TaskAction.CANCEL)
    session.execute(sa.update(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status.in_(sources),
    ).values(status=target, updated_at=now, version=CaseTask.version + 1))
    session.execute(sa.update(Escalation).where(Escalation.case_id == case.id, Escalation.resolved_at.is_(None))
                    .values(resolved_at=now))


# The same steps for callers that decide a round without a card (an API key: services/office_actions.py).
close_cards = _close_cards
decide_completions = _decide_completions


__all__ = [
    "CardOutdated",
    "NotASupervisor",
    "OutsideYourArea",
    "OwnWork",
    "ProofCard",
    "SourceClear",
    "VerificationError",
    "approve",
    "clear_at_source_in",
    "clear_reason",
    "close_cards",
    "close_from_source",
    "decide_completions",
    "end_work",
    "handled_by",
    "open_request",
    "proof_card",
    "reject",
    "request_verification",
]
