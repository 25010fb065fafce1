"""Tables of the work-order side: per-department tasks, offers to workers, proofs of completion,
verification cards and dispatch escalations.

A case (models/tables.py) is handled through one `CaseTask` per department involved (联勤联动:
several for joint-handling categories). A task is offered to one or more workers (`WorkOffer`,
first Accept wins), accepted by one, and closed by that worker's `Completion` (photos plus a
location fix). When every task of a case is done the case awaits verification, and supervisors
get a card (`VerificationRequest`). When nobody can be offered a task, an `Escalation` records
who was told.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from models.tables import _ts


class TaskStatus(StrEnum):
    WAITING = "waiting"  # nobody could be offered it; escalated, waits for a worker on duty
    OFFERED = "offered"  # offers are out; the first Accept wins
    ACCEPTED = "accepted"  # a worker holds it (also while reworking it)
    DONE = "done"  # the worker's proof is submitted
    CANCELLED = "cancelled"  # the case ended before this task was done


# Tasks that still need a worker's action.
OPEN_TASK_STATUSES = (TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED)


class CaseTask(SQLModel, table=True):
    """One department's part of a case."""

    __tablename__ = "case_task"
    __table_args__ = (sa.UniqueConstraint("case_id", "department_code", name="uq_case_task_department"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    department_code: str = Field(max_length=64)
    lead: bool = False  # the category's own department (the others join in)
    status: TaskStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    assignee_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    version: int = 1  # bumped by every change, so "first Accept wins" is a conditional update
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    accepted_at: datetime | None = _ts(nullable=True)
    done_at: datetime | None = _ts(nullable=True)


class OfferStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"  # this worker won it
    TAKEN = "taken"  # another worker accepted first
    DECLINED = "declined"  # this worker handed it back before accepting (退单, with a reason)
    RETURNED = "returned"  # this worker accepted, then handed it back (退单, with a reason)
    WITHDRAWN = "withdrawn"  # the platform took it back: worker deactivated or off duty, case ended


class WorkOffer(SQLModel, table=True):
    """A task offered to one worker, and the messages that carried the offer."""

    __tablename__ = "work_offer"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    task_id: int = Field(foreign_key="case_task.id", index=True)
    worker_id: int = Field(foreign_key="person.id", index=True)
    status: OfferStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    # The work-order text with the buttons, and the photo/location after it. Plain ids, not foreign
    # keys: a message still unsent when the order is taken is deleted from the queue instead.
    message_notification_id: int | None = None
    follow_up_notification_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=2000)  # the worker's reason for handing it back
    created_at: datetime | None = _ts()
    closed_at: datetime | None = _ts(nullable=True)


class CompletionStatus(StrEnum):
    DRAFT = "draft"  # the worker is sending photos and a location
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"  # sent back for rework
    ABANDONED = "abandoned"  # the task left the worker (returned, deactivated) before submission


class Completion(SQLModel, table=True):
    """A worker's proof that a task is done: 1-3 photos and a location fix, judged on arrival.

    The last location received is kept even when it was refused for distance or accuracy, so
    the worker can submit it flagged for the supervisor without sending anything again.
    """

    __tablename__ = "completion"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    task_id: int = Field(foreign_key="case_task.id", index=True)
    worker_id: int = Field(foreign_key="person.id", index=True)
    status: CompletionStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    photo_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    live: bool = False
    distance_m: float | None = None
    allowed_m: float | None = None  # the category's radius plus the reported accuracy
    location_at: datetime | None = _ts(nullable=True)  # when Telegram says the location was sent
    location_message_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    last_seen_at: datetime | None = _ts(nullable=True)  # last live update within the allowed distance
    problems: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    flagged: bool = False  # submitted although the location was outside what is accepted
    proof_id: int | None = Field(default=None, foreign_key="proof.id")
    started_at: datetime | None = _ts()
    submitted_at: datetime | None = _ts(nullable=True)
    decided_at: datetime | None = _ts(nullable=True)
    decided_by_id: int | None = Field(default=None, foreign_key="person.id")
    decision_note: str | None = Field(default=None, max_length=2000)


class VerificationStatus(StrEnum):
    OPEN = "open"
    DECIDED = "decided"  # approved or rejected (by this supervisor or another)


class VerificationRequest(SQLModel, table=True):
    """A proof card sent to one supervisor for one round of verification."""

    __tablename__ = "verification_request"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    supervisor_id: int = Field(foreign_key="person.id", index=True)
    case_version: int  # the card acts only on the case as it was when the card was made
    status: VerificationStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    notification_id: int | None = None  # the card message (see WorkOffer on why not a foreign key)
    created_at: datetime | None = _ts()
    closed_at: datetime | None = _ts(nullable=True)


class EscalationReason(StrEnum):
    NO_WORKER = "no_worker"  # no worker on duty in the grid or the parent area's pool
    NO_VERIFIER = "no_verifier"  # no supervisor of the area who did not also handle the case


class Escalation(SQLModel, table=True):
    """A case nobody could be found for, and who was told (the supervisor ladder builds on this)."""

    __tablename__ = "dispatch_escalation"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    task_id: int | None = Field(default=None, foreign_key="case_task.id")
    area_code: str | None = Field(default=None, max_length=64)
    reason: EscalationReason = Field(sa_column=Column(sa.String(32), nullable=False))
    notified_person_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notified_chat_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts(nullable=True, index=True)


class PendingDispatch(SQLModel, table=True):
    """A registered case waiting for the dispatcher (services/dispatcher.py).

    Written in the registering transaction and deleted in the one that makes the offers, so a crash
    in between leaves the row for the next dispatcher to take: registration never loses a dispatch.
    """

    __tablename__ = "pending_dispatch"

    case_id: int = Field(foreign_key="case.id", primary_key=True)
    queued_at: datetime | None = _ts(index=True)
    attempts: int = Field(default=0)
    not_before: datetime | None = _ts(index=True)
