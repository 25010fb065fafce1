"""Tables for supervision: escalation steps taken, extensions (延期), shelving (挂账), spot checks
(不定时抽查), and forum topics of supervisor groups.

The sweep's own bookkeeping lives on the case row (`Case.next_escalation_at`, indexed, and
`Case.escalation_round`); one `EscalationStep` row per (case, round, step) is what makes each
step happen exactly once: the unique constraint refuses a second one even if two sweeps raced.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from models.tables import _ts


class EscalationStep(SQLModel, table=True):
    """One step of the escalation ladder taken for one case (a ping to a level of the hierarchy)."""

    __tablename__ = "escalation_step"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "round", "step", name="uq_escalation_step_once"),
        sa.Index("ix_escalation_step_repeat", "next_repeat_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    round: int = 0  # Case.escalation_round when the step was taken
    step: str = Field(max_length=64)  # the policy step's code
    level: str = Field(max_length=16)  # worker | grid | street | district | city
    due_at: datetime | None = _ts()  # when the policy said it was due
    fired_at: datetime | None = _ts()
    notified_person_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notified_chat_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    repeats: int = 0
    next_repeat_at: datetime | None = _ts(nullable=True)  # NULL: no repeat (acknowledged, or none in policy)
    acknowledged_at: datetime | None = _ts(nullable=True)
    acknowledged_by_id: int | None = Field(default=None, foreign_key="person.id")


class ExtensionStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REFUSED = "refused"


class Extension(SQLModel, table=True):
    """A request for more time on a case (延期), and the supervisor's answer."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    requested_by_id: int | None = Field(default=None, foreign_key="person.id")
    reason: str = Field(max_length=1000)
    working_minutes: int  # how much working time is asked for (or granted)
    status: ExtensionStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    requested_at: datetime | None = _ts()
    decided_by_id: int | None = Field(default=None, foreign_key="person.id")
    decided_at: datetime | None = _ts(nullable=True)
    decision_note: str | None = Field(default=None, max_length=1000)
    old_due_at: datetime | None = _ts(nullable=True)
    new_due_at: datetime | None = _ts(nullable=True)


class Shelving(SQLModel, table=True):
    """A case put on hold (挂账): its clock stops; the remaining working time is kept for later."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    shelved_by_id: int | None = Field(default=None, foreign_key="person.id")
    reason: str = Field(max_length=1000)
    review_at: datetime | None = _ts()
    shelved_at: datetime | None = _ts()
    # Working minutes left on each deadline when the clock stopped (None: that deadline had no time left or none).
    accept_left_minutes: int | None = None
    handle_left_minutes: int | None = None
    unshelved_at: datetime | None = _ts(nullable=True)
    unshelved_by_id: int | None = Field(default=None, foreign_key="person.id")
    review_pinged_at: datetime | None = _ts(nullable=True)


class SpotCheckStatus(StrEnum):
    PENDING = "pending"  # asked, waiting for photo and live location
    PASSED = "passed"
    FAILED = "failed"  # answered, but not fresh or not inside the grid in time
    SILENT = "silent"  # no answer in time
    NOBODY = "nobody"  # no worker on duty to ask: escalated at once


class SpotCheck(SQLModel, table=True):
    """A check-in request to the on-duty worker of a silent grid."""

    __tablename__ = "spot_check"

    id: int | None = Field(default=None, primary_key=True)
    grid_code: str = Field(max_length=64, index=True)
    worker_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    status: SpotCheckStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    seed: str = Field(max_length=64)  # what the sample was drawn from, so a run can be replayed
    requested_at: datetime | None = _ts()
    due_at: datetime | None = _ts(index=True)
    photo_at: datetime | None = _ts(nullable=True)
    photo_path: str | None = Field(default=None, max_length=500)
    location_at: datetime | None = _ts(nullable=True)
    lat: float | None = None
    lon: float | None = None
    live: bool = False
    finished_at: datetime | None = _ts(nullable=True)
    escalated_at: datetime | None = _ts(nullable=True)
    note: str | None = Field(default=None, max_length=500)
    # Added by 0007 (services/spot_checks.py). lat/lon/live/accuracy_m are the last location received,
    # accepted or not; location_at is set only for an accepted one (live, inside the grid).
    accuracy_m: float | None = None
    location_message_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    photo_phash: str | None = Field(default=None, max_length=64)
    photo_problem: str | None = Field(default=None, max_length=64)  # why the last photo was refused
    location_problem: str | None = Field(default=None, max_length=200)  # why the last location was refused


class SpotCheckRound(SQLModel, table=True):
    """One spot-check round of a city day, planned at the day's first tick and started exactly once.

    The primary key (day, round) makes a second process (or a restart) find the plan instead of
    drawing another; `started_at` is set by a conditional update, so only one process starts a round.
    """

    __tablename__ = "spot_check_round"

    day: str = Field(primary_key=True, max_length=8)  # YYYYMMDD in the city's timezone
    round: int = Field(primary_key=True)
    seed: str = Field(max_length=64)  # the day's seed: round times and samples are drawn from it
    due_at: datetime | None = _ts()
    started_at: datetime | None = _ts(nullable=True)
    checks: int = 0  # spot checks the round made (0: no silent grid was staffed)


class SupervisorTopic(SQLModel, table=True):
    """A forum topic of a supervisor group where pings about one area go (`message_thread_id`)."""

    __tablename__ = "supervisor_topic"
    __table_args__ = (sa.UniqueConstraint("chat_id", "area_code", name="uq_supervisor_topic_area"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(sa.BigInteger, nullable=False))
    area_code: str = Field(max_length=64)
    message_thread_id: int = Field(sa_column=Column(sa.BigInteger, nullable=False))


class DigestRun(SQLModel, table=True):
    """One daily digest per city day: the unique day makes a second process (or a catch-up) skip it."""

    __tablename__ = "digest_run"

    day: str = Field(primary_key=True, max_length=8)  # YYYYMMDD in the city's timezone
    sent_at: datetime | None = _ts()
    recipients: int = 0
