"""Case changes made by API keys, each returning the changed case with its people for the answer.

Each function is the write service it names (services/intake.py, services/cases.py) followed by a
fresh read of the result, so a route calls one function. They raise what those services raise;
`act_on_case` first raises `NotVisible("case")` for a case outside the key's area, before anything
is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models.lifecycle import Action, Actor
from services import cases, idempotency, intake, office_actions
from services.api_keys import Principal
from services.api_views import NotVisible
from services.case_ending import MergeTargetInvalid
from services.case_queries import CaseView, case_view, ensure_case_visible, views_of
from services.cases import CaseError
from services.context import ServiceContext
from services.db import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseOutcome:
    outcome: str  # the write service's own outcome word (created, folded, verified, pending ...)
    view: CaseView


def intake_event(ctx: ServiceContext, *, principal: Principal, report: intake.MachineReport) -> CaseOutcome:
    """`intake.intake_event`: a new case, or the event folded into an open one."""
    result = intake.intake_event(ctx, principal=principal, report=report)
    log.info("machine event from %s: %s", getattr(report.source, "value", report.source), result.outcome, extra={"case": result.case.number})
    return CaseOutcome(result.outcome, case_view(ctx, case=result.case))


class StorableAnswer(Protocol):
    """What a route renders and the Idempotency-Key record stores (a Starlette Response is one)."""

    status_code: int
    body: bytes | memoryview
    media_type: str | None


A = TypeVar("A", bound=StorableAnswer)


def intake_event_once(ctx: ServiceContext, *, principal: Principal, report: intake.MachineReport, key: str,
                      fingerprint: str, answer: Callable[[CaseOutcome | CaseError], A]) -> A | idempotency.Replay:
    """`intake_event` under an Idempotency-Key, in ONE transaction with the key's record and its stored answer.

    `answer` renders the outcome, or a refusal (a CaseError: UnknownCategory, OutsideGrid, OutsideArea,
    IntakeInProgress), inside the transaction; what it returns is stored for replays and returned. A key
    answered before returns its `idempotency.Replay`. Raises BadKey, KeyReused or KeyInFlight (nothing is
    stored then). Any other error rolls everything back, the key's record too, so a retry runs afresh.
    """
    idempotency.check_key(key)
    now = ctx.clock.now()
    for attempt in (1, 2, 3):
        try:
            with transaction(ctx.sessions) as session:
                response, result = intake_keyed_in(session, ctx, principal=principal, report=report, key=key,
                                                   fingerprint=fingerprint, answer=answer, now=now)
        except CaseError as exc:  # a refusal: nothing of the event is stored; the refusal is the key's answer
            return _refused(ctx, principal, key, fingerprint, answer(exc))
        except IntegrityError:  # a concurrent first use of the key, or delivery of the event, committed first
            if attempt == 3:
                raise intake.IntakeInProgress(report.source_ref) from None
            continue
        if result is not None:
            intake_answered(ctx, report, result)
        return response
    raise AssertionError("unreachable")


def intake_keyed_in(session: Session, ctx: ServiceContext, *, principal: Principal, report: intake.MachineReport,
                    key: str, fingerprint: str, answer: Callable[[CaseOutcome | CaseError], A],
                    now: datetime) -> tuple[A | idempotency.Replay, intake.IntakeResult | None]:
    """The body of `intake_event_once` within the caller's transaction: the answer, and what intake did
    (None for a replay). Raises what it raises, and CaseError for a refusal: roll back then."""
    started = idempotency.begin_in(session, ctx, api_key_id=principal.id, key=key, fingerprint=fingerprint)
    if isinstance(started, idempotency.Replay):
        return started, None
    response, result = intake_answer_in(session, ctx, principal=principal, report=report, answer=answer, now=now)
    _store(session, started, response)
    return response, result


def intake_answer_in(session: Session, ctx: ServiceContext, *, principal: Principal, report: intake.MachineReport,
                     answer: Callable[[CaseOutcome | CaseError], A], now: datetime) -> tuple[A, intake.IntakeResult]:
    """The event's intake and its rendered answer, within the caller's transaction; the key's record is the
    caller's (`intake_keyed_in`, or `idempotency.store_new` for a batch's new keys)."""
    grid_code = intake.locate(ctx, report)
    result = intake.intake_in(session, ctx, principal=principal, report=report, grid_code=grid_code, now=now)
    return answer(CaseOutcome(result.outcome, views_of(session, [result.case])[0])), result


def new_answer(principal: Principal, key: str, fingerprint: str, response: StorableAnswer) -> idempotency.NewAnswer:
    """`response` as the stored answer of a key's first use (`idempotency.store_new`)."""
    return idempotency.NewAnswer(api_key_id=principal.id, key=key, fingerprint=fingerprint,
                                 status_code=response.status_code, body=bytes(response.body).decode(),
                                 content_type=response.media_type or "application/json")


def intake_answered(ctx: ServiceContext, report: intake.MachineReport, result: intake.IntakeResult) -> None:
    """After the commit of a keyed intake: log it, and wake the dispatcher and the sender for a new case."""
    log.info("machine event from %s: %s", report.source.value, result.outcome, extra={"case": result.case.number})
    if result.outcome == "created":
        cases.registered(ctx, result.case)


def _store(session: Session, started: idempotency.Started, response: StorableAnswer) -> None:
    idempotency.finish_in(session, record_id=started.record_id, status_code=response.status_code,
                          body=bytes(response.body).decode(), content_type=response.media_type or "application/json")


def _refused(ctx: ServiceContext, principal: Principal, key: str, fingerprint: str, response: A) -> A | idempotency.Replay:
    """Store a refusal as the key's answer, in a transaction of its own (the refused one rolled back)."""
    for _ in range(3):
        try:
            with transaction(ctx.sessions) as session:
                started = idempotency.begin_in(session, ctx, api_key_id=principal.id, key=key, fingerprint=fingerprint)
                if isinstance(started, idempotency.Replay):
                    return started
                _store(session, started, response)
                return response
        except IntegrityError:
            continue
    raise idempotency.KeyInFlight(key)


def correct_case(ctx: ServiceContext, *, principal: Principal, case_id: int, description: str | None,
                 address: str | None) -> CaseView:
    """`intake.update_case_details`: a corrected description or address."""
    case = intake.update_case_details(ctx, principal=principal, case_id=case_id, description=description,
                                      address=address)
    return case_view(ctx, case=case)


def act_on_case(ctx: ServiceContext, *, principal: Principal, case_id: int, action: Action, note: str | None,
                expected_version: int | None, merge_into_id: int | None = None) -> CaseView:
    """`office_actions.act` (the action with its work: offers, tasks, workers told) as the key's role, on a
    case inside the key's area only; a merge's surviving case must be inside it too (else MergeTargetInvalid)."""
    ensure_case_visible(ctx, principal=principal, case_id=case_id)
    if action is Action.MERGE and merge_into_id is not None:
        try:
            ensure_case_visible(ctx, principal=principal, case_id=merge_into_id)
        except NotVisible:
            raise MergeTargetInvalid("unknown") from None
    case = office_actions.act(ctx, case_id=case_id, action=action, actor=Actor(principal.acts_as), note=note,
                              expected_version=expected_version, merge_into_id=merge_into_id)
    log.info("case %s by API: now %s", action.value, getattr(case.status, "value", case.status),
             extra={"case": case.number})
    return case_view(ctx, case=case)


def clear_case(ctx: ServiceContext, *, principal: Principal, case_id: int, note: str | None) -> CaseOutcome:
    """`intake.clear_case`: the source says the problem is gone."""
    result = intake.clear_case(ctx, principal=principal, case_id=case_id, note=note)
    log.info("clear from the source: %s", result.outcome, extra={"case": result.case.number})
    return CaseOutcome(result.outcome, case_view(ctx, case=result.case))
