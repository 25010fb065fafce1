"""Welfare checks (上门查看): an alarm from a listed elder's device, offered to whoever is on call, closed by an
outcome recorded on site.

What callers may rely on:
- `open_for_alarm` (services/welfare_calls.py; machine intake, in the registering transaction) links a new case of an elderly-care
  category whose device id is on the elder roster to that elder's record: a `WelfareCheck`.
- dispatch (services/dispatch.py, for a case with a `WelfareCheck`, instead of ordinary dispatch) makes one task and offers it at once to
  every worker on the area's duty roster now (services/duty_roster.py), day or night, on normal duty or
  not; with nobody on call, the task waits and the supervisors are told as for any order.
- `record_outcome` needs the worker holding the task to be on site: their own fresh, precise location
  within the category's proof radius (services/work_rules.py `judge_location`); any problem refuses and
  nothing is written. SAFE, NEEDS_HELP and NOT_HOME complete the task (a Completion and a Proof with that
  location, no photo) and send the case to verification; NO_ANSWER keeps the case open with the worker and
  escalates at once to the street's supervisors and its 居委会 (`WelfareEscalated`).
- Every outcome is offered to the family contacts who chose to be told: a `FamilyNotice` per contact,
  `queued` for one with a chat (the channel sends it), `sms_not_configured` otherwise (OneGrid sends no SMS).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from models.elders import AreaContact, FamilyNotice, WelfareCheck, WelfareOutcome
from models.events.alarms import WelfareOutcomeRecorded
from models.lifecycle import Action, Actor, Status
from models.tables import Case, Person, Proof
from models.work import CaseTask, Completion, CompletionStatus, TaskStatus
from models.work_lifecycles import COMPLETIONS, TASKS, CompletionAction, TaskAction, guard, initial
from services import reference, verification
from services.areas import area_chain
from services.cases import apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.work_common import LocationRefused, NotYourOrder, TaskNotOpen, completing_role, note_event, task_holder
from services.work_rules import LocationFix, judge_location
from services.welfare_calls import COMMITTEE, check_of, escalate_now


@dataclass(frozen=True)
class OutcomeResult:
    case_number: str
    outcome: WelfareOutcome
    distance_m: float
    case_status: str


def add_contact(ctx: ServiceContext, *, area_code: str, name: str, phone: str = "", chat_id: int | None = None,
                locale: str = "zh_CN", role: str = COMMITTEE) -> AreaContact:
    """Record a contact of an area (the 居委会 of a street); raises ValueError for an unknown area."""
    with transaction(ctx.sessions) as session:
        if not area_chain(session, area_code):
            raise ValueError(f"{area_code} is not an area")
        if not name.strip() or (not phone.strip() and chat_id is None):
            raise ValueError("a contact needs a name and a phone or a chat id")
        row = AreaContact(area_code=area_code, role=role, name=name.strip(), phone=phone.strip(), chat_id=chat_id,
                          locale=locale, created_at=ctx.clock.now())
        session.add(row)
        session.flush()
        return row


def record_outcome(ctx: ServiceContext, *, task_id: int, worker_id: int, outcome: WelfareOutcome,
                   fix: LocationFix) -> OutcomeResult:
    """Record what the worker found on site (see the module docstring). Raises WorkError subclasses."""
    with transaction(ctx.sessions) as session:
        worker = task_holder(session, worker_id)
        task = session.get(CaseTask, task_id)
        if task is None or task.assignee_id != worker.id:
            raise NotYourOrder(str(task_id))
        case = session.get(Case, task.case_id)
        check = check_of(session, case.id)
        if check is None:
            raise NotYourOrder(str(task_id))
        if task.status != TaskStatus.ACCEPTED or Status(case.status) not in (Status.IN_PROGRESS, Status.REWORK):
            raise TaskNotOpen(case.number, case.status)
        category = reference.category(session, case.category_code)
        now = ctx.clock.now()
        judgement = judge_location(fix, case_lat=case.lat, case_lon=case.lon,
                                   radius_m=category.proof_radius_m if category else 100, now=now,
                                   max_age_s=ctx.settings.proof_location_max_age_s,
                                   max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)
        if not judgement.accepted:
            raise LocationRefused(judgement)
        check.outcome, check.outcome_at, check.worker_id = outcome.value, now, worker.id
        check.lat, check.lon, check.distance_m = fix.lat, fix.lon, judgement.distance_m
        session.add(check)
        actor = Actor(completing_role(worker), worker.id)
        if outcome is WelfareOutcome.NO_ANSWER:
            note_event(session, ctx, case, Action.COMPLETE, actor, "welfare check: no answer on site; escalated")
            escalate_now(session, ctx, case, "no_answer")
        else:
            _complete(session, ctx, case, task, worker, fix, judgement.distance_m, actor, outcome)
        notices = _family_notices(session, check, now)
        ctx.publish(session, WelfareOutcomeRecorded(
            check_id=check.id, case_id=case.id, worker_id=worker.id, outcome=outcome.value,
            distance_m=judgement.distance_m, notice_ids=tuple(n.id for n in notices)))
        result = OutcomeResult(case.number, outcome, judgement.distance_m, case.status)
    ctx.on_notifications()
    return result


def _complete(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, worker: Person, fix: LocationFix,
              distance_m: float, actor: Actor, outcome: WelfareOutcome) -> None:
    now = ctx.clock.now()
    sources, target = guard(TASKS, TaskAction.SUBMIT)
    done = session.execute(sa.update(CaseTask).where(
        CaseTask.id == task.id, CaseTask.version == task.version, CaseTask.status.in_(sources),
        CaseTask.assignee_id == worker.id).values(status=target, done_at=now, updated_at=now,
                                                  version=task.version + 1)).rowcount
    if done != 1:
        raise TaskNotOpen(case.number, case.status)
    proof = Proof(case_id=case.id, worker_id=worker.id, lat=fix.lat, lon=fix.lon, accuracy_m=fix.accuracy_m,
                  live=fix.live, distance_m=distance_m, flagged=False, created_at=now)
    session.add(proof)
    session.flush()
    completion = Completion(case_id=case.id, task_id=task.id, worker_id=worker.id,
                            status=initial(COMPLETIONS, CompletionStatus.DRAFT), started_at=now, lat=fix.lat,
                            lon=fix.lon, accuracy_m=fix.accuracy_m, live=fix.live, distance_m=distance_m,
                            location_at=fix.sent_at, location_message_id=fix.message_id, last_seen_at=fix.sent_at)
    completion.status = COMPLETIONS.step(CompletionStatus(completion.status), CompletionAction.SUBMIT)
    completion.submitted_at, completion.proof_id = now, proof.id
    session.add(completion)
    session.flush()
    apply_action_in(session, ctx, case, action=Action.COMPLETE, actor=actor, note=f"welfare check: {outcome.value}")
    verification.request_verification(session, ctx, case)


def _family_notices(session: Session, check: WelfareCheck, now) -> list[FamilyNotice]:  # noqa: ANN001
    from models.elders import Elder

    elder = session.get(Elder, check.elder_id)
    out = []
    for contact in (elder.contacts if elder else []) or []:
        if not contact.get("notify"):
            continue
        chat = contact.get("chat_id")
        row = FamilyNotice(check_id=check.id, contact_name=contact.get("name", ""),
                           channel="telegram" if chat is not None else "sms",
                           status="queued" if chat is not None else "sms_not_configured", chat_id=chat,
                           created_at=now)
        session.add(row)
        out.append(row)
    session.flush()
    return out


def held_check(ctx: ServiceContext, *, task_id: int, worker_id: int) -> str:
    """The case number of the welfare check `task_id` that the worker holds and may record an outcome for
    (nothing is written). Raises NotYourOrder or TaskNotOpen."""
    with ctx.sessions() as session:
        worker = task_holder(session, worker_id)
        task = session.get(CaseTask, task_id)
        if task is None or task.assignee_id != worker.id or check_of(session, task.case_id) is None:
            raise NotYourOrder(str(task_id))
        case = session.get(Case, task.case_id)
        if task.status != TaskStatus.ACCEPTED or Status(case.status) not in (Status.IN_PROGRESS, Status.REWORK):
            raise TaskNotOpen(case.number, case.status)
        return case.number
