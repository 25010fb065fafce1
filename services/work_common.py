"""What the field-work services share: their refusals, who may act, and audit notes that change no status.

Every refusal is a `WorkError` subclass carrying data (case numbers, statuses, problems), never text;
when one is raised nothing was written.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from models.lifecycle import Action, Actor, Role, Status
from models.tables import Case, CaseEvent, Person
from models.work import Completion, OfferStatus
from models.work_lifecycles import COMPLETIONS, CompletionAction, guard
from services.context import ServiceContext
from services.photos import PhotoProblem
from services.work_rules import LocationJudgement

MAX_REASON = 500


# -- refusals -------------------------------------------------------------------------------------


class WorkError(Exception):
    """A refusal the worker can be told about; nothing was written."""


class NotAWorker(WorkError):
    pass


class WorkerInactive(WorkError):
    pass


class NotYourOrder(WorkError):
    pass


class OfferUnavailable(WorkError):
    """The offer was taken by someone else, withdrawn, or already handed back."""

    def __init__(self, number: str, why: OfferStatus) -> None:
        super().__init__(f"{number}: {why.value}")
        self.number, self.why = number, why


class TaskNotOpen(WorkError):
    """The task or its case is not in a state where this can be done (e.g. already submitted)."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


class ReasonRequired(WorkError):
    pass


class ReturnNotAllowed(WorkError):
    """Rework and pending extensions cannot be handed back by the worker; a supervisor reassigns them."""

    def __init__(self, number: str) -> None:
        super().__init__(number)
        self.number = number


class ProofPhotoRefused(WorkError):
    def __init__(self, problem: PhotoProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class SamePicture(WorkError):
    """The photo repeats the resident's photo ("report") or an earlier proof ("proof")."""

    def __init__(self, earlier: str) -> None:
        super().__init__(earlier)
        self.earlier = earlier


class TooManyPhotos(WorkError):
    def __init__(self, limit: int) -> None:
        super().__init__(str(limit))
        self.limit = limit


class PhotosMissing(WorkError):
    pass


class LocationMissing(WorkError):
    pass


class LocationRefused(WorkError):
    """A location that proves nothing (forwarded, a venue, via a bot, not sent just now)."""

    def __init__(self, judgement: LocationJudgement) -> None:
        super().__init__(", ".join(p.value for p in judgement.problems))
        self.judgement = judgement


# -- who may act ----------------------------------------------------------------------------------------


def active_worker(session: Session, worker_id: int) -> Person:
    """The active worker `worker_id`, or NotAWorker / WorkerInactive."""
    person = session.get(Person, worker_id)
    if person is None or not person.has_role(Role.WORKER):
        raise NotAWorker(str(worker_id))
    if not person.active:
        raise WorkerInactive(str(worker_id))
    return person


def task_holder(session: Session, person_id: int) -> Person:
    """Who may complete a task: an active worker, or an active supervisor (only a task they hold, which
    they get by taking the case over; services/proofs.py checks the task's assignee for everyone)."""
    person = session.get(Person, person_id)
    if person is None or not (person.has_role(Role.WORKER) or person.has_role(Role.SUPERVISOR)):
        raise NotAWorker(str(person_id))
    if not person.active:
        raise WorkerInactive(str(person_id))
    return person


def completing_role(person: Person) -> Role:
    return Role.WORKER if person.has_role(Role.WORKER) else Role.SUPERVISOR


def clean_reason(reason: str | None) -> str:
    """The worker's reason on one line, at most MAX_REASON characters; ReasonRequired when empty."""
    text = " ".join((reason or "").split())
    if not text:
        raise ReasonRequired()
    return text[:MAX_REASON]


def note_event(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor, note: str) -> None:
    """An audit event that changes no status (a department's part of a joint case, a declined offer)."""
    status = Status(case.status)
    session.add(CaseEvent(case_id=case.id, actor_id=actor.person_id, actor_role=actor.role, action=action,
                          from_status=status, to_status=status, note=note[:2000], at=ctx.clock.now()))


def abandon_drafts(session: Session, task_id: int, worker_id: int, now: datetime) -> None:
    """Drafts of a proof the worker can no longer finish (the task left them) are abandoned."""
    sources, target = guard(COMPLETIONS, CompletionAction.ABANDON)
    session.execute(sa.update(Completion).where(
        Completion.task_id == task_id, Completion.worker_id == worker_id,
        Completion.status.in_(sources)).values(status=target, decided_at=now))
