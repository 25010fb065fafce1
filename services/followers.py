"""Telling the reporter and followers what happened to their case. Filled in by the residents issue.

`on_status_change` runs inside the transaction of every status change (services/cases.py),
so the message is queued exactly when the change commits.
"""

from __future__ import annotations

from sqlmodel import Session

from models.lifecycle import Transition
from models.tables import Case
from services.context import ServiceContext


def on_status_change(session: Session, ctx: ServiceContext, case: Case, tr: Transition) -> None:
    """Queue notifications for the people following `case` after `tr`."""
    return None
