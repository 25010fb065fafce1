"""The patrol side (巡查上报): a grid worker's own report of a problem they found, and what they chose for it.

A patrol case is an ordinary `Case` with source PATROL and the finder as its reporter; this row adds the
one thing the case row cannot say: whether the finder kept it or handed it to dispatch (another
department's job). services/dispatch.py reads it when the case is dispatched.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.tables import _ts


class PatrolReport(SQLModel, table=True):
    """One per patrol case: its finder, and whether they handed it to dispatch instead of keeping it."""

    __tablename__ = "patrol_report"

    case_id: int = Field(foreign_key="case.id", primary_key=True)
    finder_id: int = Field(foreign_key="person.id", index=True)
    handed_to_dispatch: bool = False
    created_at: datetime | None = _ts()
