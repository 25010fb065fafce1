"""Tables of running several OneGrid processes on one store (services/job_lease.py)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from models.tables import _ts


class JobLease(SQLModel, table=True):
    """One scheduled job's lease: the process running it now, and until when nobody else may start it.

    While the job runs, `lease_until` covers the run (so a holder that dies frees it after a while);
    when it finishes, `lease_until` is set to the end of its period, so a job runs once per period
    whichever process's scheduler ticks first.
    """

    __tablename__ = "job_lease"

    name: str = Field(sa_column=Column(sa.String(64), primary_key=True))
    holder: str = Field(sa_column=Column(sa.String(128), nullable=False))
    lease_until: datetime = _ts()
    started_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True)
    runs: int = Field(default=0, sa_column=Column(sa.Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, max_length=2000)
