"""Ending a case before its work is done: cancel (注销), merge a duplicate, and a resident's withdrawal.

What callers may rely on:
- Every path ends the case's work the same way (`end_work_in`): open offers are withdrawn (the workers'
  orders say so), a worker holding a task is told it is no longer theirs and their proof draft is
  dropped, open tasks are cancelled, open escalations are settled.
- `cancel_in`: CANCEL with a reason (lifecycle rule: who, from which status); followers are told by the
  status change, the acting supervisor gets a confirmation (`CaseCancelled`).
- `merge_in`: the duplicate closes as MERGED with `merged_into_id` set; its reporter and followers follow
  the surviving case (which must be open, and not the duplicate itself) and are told so (`CaseMerged`),
  its report count adds to the survivor's, and the survivor's audit trail records the duplicate and its
  photos (the photos stay attached to the duplicate).
- `withdraw_report`: the reporter withdraws their own report while nobody has started on it; when other
  residents reported it too, the case stays open for them and the reporter only stops following it.
- `cancel_case`, `merge_case`, `merge_candidates` are the supervisor's chat entry points: they check the
  supervisor's area (both cases for a merge). Each public call is one transaction and refuses with
  nothing written.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.case_actions import CaseCancelled, CaseMerged, ReportWithdrawn, WithdrawalOutcome
from models.events.work import RetractReason
from models.lifecycle import OPEN, TRANSITIONS, Action, Actor, Role, Status
from models.resident import CaseFollower, FollowKind
from models.tables import Case, Photo
from models.work import CaseTask, Escalation, TaskStatus
from models.work_lifecycles import TASKS, TaskAction
from services import reference
from services.cases import CaseNotFound, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.names import localized
from services.supervision_access import NotNow, SupervisionError, supervisor_and_case
from services.takeover import free_task
from services.work_common import clean_reason, note_event

MERGE_CANDIDATES = 5
WITHDRAW_NOTE = "withdrawn by the reporter"
_OPEN_TASK = (TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED)
# A resident may withdraw while nobody has started on the case.
WITHDRAWABLE = frozenset({Status.REPORTED, Status.REGISTERED, Status.DISPATCHED})


class EndingError(Exception):
    """A refusal the user can be told about; nothing was written."""


class MergeTargetInvalid(EndingError):
    """The surviving case does not exist, is the duplicate itself, or is not open (`why`)."""

    def __init__(self, why: str, number: str = "") -> None:
        super().__init__(f"{why}: {number}")
        self.why, self.number = why, number


class NotYourReport(EndingError):
    pass


class AlreadyUnderWay(EndingError):
    """Work on the case has started (or it ended): the reporter can no longer withdraw it."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


# -- inside the caller's transaction ------------------------------------------------------------------


def end_work_in(session: Session, ctx: ServiceContext, case: Case) -> None:
    """Withdraw every open offer and held task of `case` (their workers are told), cancel its open tasks,
    settle its escalations."""
    now = ctx.clock.now()
    for task in session.exec(select(CaseTask).where(CaseTask.case_id == case.id,
                                                    CaseTask.status.in_(_OPEN_TASK))).all():
        free_task(session, ctx, case, task, RetractReason.CASE_ENDED)
        task.status = TASKS.step(TaskStatus(task.status), TaskAction.CANCEL)
        session.add(task)
    session.flush()
    session.execute(sa.update(Escalation).where(Escalation.case_id == case.id, Escalation.resolved_at.is_(None))
                    .values(resolved_at=now))
    session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None, next_escalation_at=None))


def cancel_in(session: Session, ctx: ServiceContext, case: Case, *, actor: Actor, reason: str) -> None:
    """Cancel `case` (注销) with `reason` and end its work; raises a lifecycle error when `actor` may not."""
    apply_action_in(session, ctx, case, action=Action.CANCEL, actor=actor, note=reason)
    end_work_in(session, ctx, case)
    ctx.publish(session, CaseCancelled(case_id=case.id, case_number=case.number, actor_person_id=actor.person_id,
                                       reason=reason))


def merge_in(session: Session, ctx: ServiceContext, case: Case, target: Case | None, *, actor: Actor,
             note: str | None = None) -> None:
    """Merge duplicate `case` into `target` (see the module docstring); raises MergeTargetInvalid or a
    lifecycle error with nothing written."""
    if target is None:
        raise MergeTargetInvalid("unknown")
    if target.id == case.id:
        raise MergeTargetInvalid("same", target.number)
    if Status(target.status) not in OPEN:
        raise MergeTargetInvalid("not_open", target.number)
    text = f"merged into {target.number}" + (f": {note.strip()}" if note and note.strip() else "")
    # Followers move first, so the duplicate's status change tells nobody; CaseMerged words it for them.
    moved = _move_followers(session, case, target, ctx)
    apply_action_in(session, ctx, case, action=Action.MERGE, actor=actor, note=text[:2000])
    end_work_in(session, ctx, case)
    session.execute(sa.update(Case).where(Case.id == case.id).values(merged_into_id=target.id))
    session.execute(sa.update(Case).where(Case.id == target.id).values(
        report_count=Case.report_count + case.report_count))
    photo_ids = session.exec(select(Photo.id).where(Photo.case_id == case.id).order_by(Photo.id)).all()
    photos = f"; its photos: {', '.join(str(i) for i in photo_ids)}" if photo_ids else ""
    note_event(session, ctx, target, Action.MERGE, actor, f"duplicate {case.number} merged into this case{photos}")
    ctx.publish(session, CaseMerged(case_id=case.id, case_number=case.number, into_case_id=target.id,
                                    into_number=target.number, moved_person_ids=tuple(moved),
                                    actor_person_id=actor.person_id))


def _move_followers(session: Session, case: Case, target: Case, ctx: ServiceContext) -> list[int]:
    """The duplicate's followers follow `target` instead (once each); returns who was moved, in order.
    /my then lists the surviving case; the duplicate's audit trail keeps its history."""
    rows = session.exec(select(CaseFollower).where(CaseFollower.case_id == case.id).order_by(CaseFollower.id)).all()
    already = set(session.exec(select(CaseFollower.person_id).where(CaseFollower.case_id == target.id)).all())
    moved = []
    for row in rows:
        if row.person_id not in already:
            session.add(CaseFollower(case_id=target.id, person_id=row.person_id, kind=FollowKind.FOLLOWER,
                                     created_at=ctx.clock.now()))
            already.add(row.person_id)
        moved.append(row.person_id)
        session.delete(row)
    session.flush()
    return moved


# -- the supervisor in chat ------------------------------------------------------------------------------


def cancel_case(ctx: ServiceContext, *, case_id: int, supervisor_id: int, reason: str) -> str:
    """A supervisor cancels a case of their area with a reason. Returns the case number."""
    note = clean_reason(reason)
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        _allowed(case, Action.CANCEL)
        cancel_in(session, ctx, case, actor=Actor(Role.SUPERVISOR, supervisor.id), reason=note)
        number = case.number
    ctx.on_notifications()
    return number


def _allowed(case: Case, action: Action) -> None:
    """NotNow unless the lifecycle has `action` from the case's status (a supervisor is told in those words)."""
    rule = TRANSITIONS.get((Status(case.status), action))
    if rule is None or Role.SUPERVISOR not in rule.roles:
        raise NotNow(case.number, case.status)


def case_number_for(ctx: ServiceContext, *, case_id: int, supervisor_id: int, action: Action) -> str:
    """The number of a case of the supervisor's area that `action` may end now (else the refusal)."""
    with ctx.sessions() as session:
        _sup, case = supervisor_and_case(session, supervisor_id, case_id)
        _allowed(case, action)
        return case.number


def find_case_id(ctx: ServiceContext, *, number: str) -> int | None:
    """The id of the case numbered `number` (any spelling of case and spaces), or None."""
    with ctx.sessions() as session:
        return session.exec(select(Case.id).where(Case.number == "".join(number.split()).upper())).first()


def merge_candidates(ctx: ServiceContext, *, case_id: int, supervisor_id: int,
                     locale: str) -> list[tuple[int, str, str]]:
    """Open cases of the same grid the duplicate may be merged into, same category first, then newest first:
    (id, number, category name in `locale`)."""
    with ctx.sessions() as session:
        _sup, case = supervisor_and_case(session, supervisor_id, case_id)
        rows = session.exec(select(Case).where(
            Case.grid_code == case.grid_code, Case.id != case.id, Case.status.in_([s.value for s in OPEN]))
            .order_by(Case.id.desc()).limit(50)).all()
        same = [c for c in rows if c.category_code == case.category_code]
        ordered = same + [c for c in rows if c.category_code != case.category_code]
        return [(c.id, c.number, localized(reference.category(session, c.category_code), locale, c.category_code))
                for c in ordered[:MERGE_CANDIDATES]]


def merge_case(ctx: ServiceContext, *, case_id: int, supervisor_id: int, into_case_id: int | None) -> tuple[str, str]:
    """A supervisor merges a duplicate into an open case; both must be in their area.
    Returns (duplicate number, surviving number)."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        _allowed(case, Action.MERGE)
        if into_case_id is None:
            raise MergeTargetInvalid("unknown")
        try:
            _sup, target = supervisor_and_case(session, supervisor_id, into_case_id)
        except CaseNotFound:
            raise MergeTargetInvalid("unknown") from None
        except SupervisionError:
            raise MergeTargetInvalid("outside", "") from None
        merge_in(session, ctx, case, target, actor=Actor(Role.SUPERVISOR, supervisor.id))
        numbers = case.number, target.number
    ctx.on_notifications()
    return numbers


# -- the resident ----------------------------------------------------------------------------------------


def withdrawal_blocker(session: Session, case: Case, person_id: int) -> str | None:
    """Why `person_id` may not withdraw `case` now ("not_reporter", "under_way"), or None when they may."""
    if case.reporter_id != person_id:
        return "not_reporter"
    if Status(case.status) not in WITHDRAWABLE:
        return "under_way"
    held = session.exec(select(CaseTask.id).where(
        CaseTask.case_id == case.id, CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]))).first()
    return "under_way" if held is not None else None


def withdraw_report(ctx: ServiceContext, *, case_id: int, person_id: int) -> WithdrawalOutcome:
    """The reporter withdraws their report before anyone started on it (see the module docstring)."""
    with transaction(ctx.sessions) as session:
        case = session.get(Case, case_id, with_for_update=session.get_bind().dialect.name == "postgresql")
        if case is None:
            raise CaseNotFound(str(case_id))
        blocker = withdrawal_blocker(session, case, person_id)
        if blocker == "not_reporter":
            raise NotYourReport(case.number)
        if blocker is not None:
            raise AlreadyUnderWay(case.number, case.status)
        others = session.exec(select(CaseFollower.id).where(
            CaseFollower.case_id == case.id, CaseFollower.person_id != person_id)).first()
        if others is not None:
            session.execute(sa.delete(CaseFollower).where(CaseFollower.case_id == case.id,
                                                          CaseFollower.person_id == person_id))
            outcome = WithdrawalOutcome.UNFOLLOWED
        else:
            cancel_in(session, ctx, case, actor=Actor(Role.RESIDENT, person_id), reason=WITHDRAW_NOTE)
            outcome = WithdrawalOutcome.CANCELLED
        ctx.publish(session, ReportWithdrawn(case_id=case.id, case_number=case.number, person_id=person_id,
                                             outcome=outcome))
    ctx.on_notifications()
    return outcome


__all__ = [
    "AlreadyUnderWay",
    "EndingError",
    "MergeTargetInvalid",
    "NotYourReport",
    "cancel_case",
    "cancel_in",
    "case_number_for",
    "end_work_in",
    "find_case_id",
    "merge_candidates",
    "merge_case",
    "merge_in",
    "withdraw_report",
    "withdrawal_blocker",
]
