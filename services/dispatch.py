"""Dispatch (派遣): choosing who handles a newly registered case. Filled in by the workers issue.

`dispatch_new_case` runs inside the registering transaction, so a case and its work orders
commit together. Until the workers issue, cases wait as registered.
"""

from __future__ import annotations

from sqlmodel import Session

from models.tables import Case
from services.context import ServiceContext


def dispatch_new_case(session: Session, ctx: ServiceContext, case: Case) -> None:
    """Offer `case` to workers (or escalate) within `session`; may change its status to dispatched."""
    return None
