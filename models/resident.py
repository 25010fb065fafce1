"""Tables for the resident side: who follows a case, what residents said after closure (回访),
and a receipt per submitted report draft (so a double tap or a retry never makes two cases).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from models.tables import _ts


class FollowKind(StrEnum):
    REPORTER = "reporter"  # opened the case
    FOLLOWER = "follower"  # said "this is the same problem" about an open case


class CaseFollower(SQLModel, table=True):
    """A resident told about every stage of a case: its reporter and everyone who reported it again."""

    __tablename__ = "case_follower"
    __table_args__ = (sa.UniqueConstraint("case_id", "person_id", name="uq_case_follower_case_person"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    kind: FollowKind = Field(sa_column=Column(sa.String(16), nullable=False))
    created_at: datetime | None = _ts()


class CaseFeedback(SQLModel, table=True):
    """回访: one resident's answer about one closure of a case ("is it fixed?", a 1–5 rating, a comment).

    A case closed, reopened and closed again gets a new row per closure (`closed_at`). Ratings stay
    when a resident deletes their account; the comment, which may hold personal data, does not.
    """

    __tablename__ = "case_feedback"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "person_id", "closed_at", name="uq_case_feedback_closure"),
        sa.CheckConstraint("rating IS NULL OR (rating BETWEEN 1 AND 5)", name="ck_case_feedback_rating"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    closed_at: datetime | None = _ts()  # the closure this feedback is about
    asked_at: datetime | None = _ts()
    fixed: bool | None = None  # None until answered
    answered_at: datetime | None = _ts(nullable=True)
    reopened: bool = False  # the "not fixed" answer reopened the case for rework
    rating: int | None = None  # 1..5
    comment: str | None = Field(default=None, max_length=1000)
    rated_at: datetime | None = _ts(nullable=True)


class ReportKind(StrEnum):
    NEW_CASE = "new_case"
    FOLLOW = "follow"


class ReportReceipt(SQLModel, table=True):
    """One per report draft a resident submitted: the case it opened or joined.

    The unique (person, draft) pair is what makes Submit idempotent, also across processes and
    on a retry after a crash: the second attempt finds the receipt instead of opening a case.
    Receipts also count reports for the per-hour limit.
    """

    __tablename__ = "report_receipt"
    __table_args__ = (
        sa.UniqueConstraint("person_id", "draft_id", name="uq_report_receipt_draft"),
        sa.Index("ix_report_receipt_person_created", "person_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id")
    draft_id: str = Field(max_length=32)
    case_id: int = Field(foreign_key="case.id", index=True)
    kind: ReportKind = Field(sa_column=Column(sa.String(16), nullable=False))
    created_at: datetime | None = _ts()
