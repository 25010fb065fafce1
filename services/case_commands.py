"""Case changes made by API keys, each returning the changed case with its people for the answer.

Each function is the write service it names (services/intake.py, services/cases.py) followed by a
fresh read of the result, so a route calls one function. They raise what those services raise;
`act_on_case` first raises `NotVisible("case")` for a case outside the key's area, before anything
is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from models.lifecycle import Action, Actor
from services import intake, office_actions
from services.api_keys import Principal
from services.api_views import NotVisible
from services.case_ending import MergeTargetInvalid
from services.case_queries import CaseView, case_view, ensure_case_visible
from services.context import ServiceContext

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
