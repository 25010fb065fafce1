"""Tables of field work beside the work order: progress notes, off-duty handovers, camera snapshots.

- `ProgressNote`: what the holder of a task says about it on the way ("arrived", "waiting for
  materials", "needs another department", or their own words); shown on the supervisor's card and
  the resident's /my (services/progress.py).
- `OffDutyHandover`: a worker went off duty keeping held orders; at `release_at` the orders still held
  go back to dispatch (services/handover.py), unless the worker came back on duty first.
- `CaseSnapshot`: one fetch of a machine case's snapshot link (`Case.media_urls`), made once by the
  dispatcher before the case is offered (services/snapshots.py); `photo_id` is the cleaned copy.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from models.tables import _ts


class ProgressKind(StrEnum):
    ARRIVED = "arrived"
    WAITING_MATERIALS = "waiting_materials"
    NEEDS_DEPARTMENT = "needs_department"  # the supervisor is told at once
    TEXT = "text"  # the worker's own words


class ProgressNote(SQLModel, table=True):
    __tablename__ = "progress_note"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    task_id: int = Field(foreign_key="case_task.id")
    worker_id: int = Field(foreign_key="person.id")
    kind: ProgressKind = Field(sa_column=Column(sa.String(24), nullable=False))
    text: str | None = Field(default=None, max_length=500)  # as written; readers get it masked
    created_at: datetime | None = _ts()


class OffDutyHandover(SQLModel, table=True):
    """A worker off duty with held orders they chose to keep, and when those go back to dispatch."""

    __tablename__ = "off_duty_handover"

    worker_id: int = Field(foreign_key="person.id", primary_key=True)
    off_duty_at: datetime | None = _ts()
    release_at: datetime | None = _ts(index=True)


class SnapshotOutcome(StrEnum):
    FETCHED = "fetched"  # cleaned and stored as the case's photo (`photo_id`)
    REFUSED = "refused"  # not on the allowed host list, or not http(s): never fetched
    FAILED = "failed"  # fetched but unusable: timeout, HTTP error, too large, not a picture


class CaseSnapshot(SQLModel, table=True):
    __tablename__ = "case_snapshot"
    __table_args__ = (sa.UniqueConstraint("case_id", "url", name="uq_case_snapshot_url"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    url: str = Field(max_length=1000)
    outcome: SnapshotOutcome = Field(sa_column=Column(sa.String(16), nullable=False))
    # A plain id, not a foreign key: retention deletes photo rows of finished cases (services/retention.py).
    photo_id: int | None = None
    detail: str | None = Field(default=None, max_length=500)
    fetched_at: datetime | None = _ts()
