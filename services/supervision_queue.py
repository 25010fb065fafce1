"""The verification queue (/verify): cases awaiting verification in a supervisor's subtree, and opening one.

Opening a queued case records an open card for the supervisor (`VerificationRequested` with
`from_queue`), exactly as if it had been sent to them, so approving or rejecting works the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from models.lifecycle import Role, Status
from models.tables import Case, Person
from services.context import ServiceContext
from services.db import transaction
from services.escalation import subtree_grids
from services.supervision_access import NotASupervisor, NotNow, supervisor_and_case
from services.verification import OwnWork, handled_by, open_request


@dataclass(frozen=True)
class QueueItem:
    case_id: int
    number: str
    category_code: str
    waiting_since: datetime | None


def verification_queue(ctx: ServiceContext, *, supervisor_id: int, limit: int = 20) -> list[QueueItem]:
    """Cases awaiting verification in the supervisor's area subtree, oldest first."""
    with ctx.sessions() as session:
        supervisor = session.get(Person, supervisor_id)
        if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active \
                or supervisor.area_code is None:
            raise NotASupervisor(str(supervisor_id))
        codes = subtree_grids(session, supervisor.area_code)
        rows = session.exec(select(Case).where(Case.status == Status.AWAITING_VERIFICATION,
                                               Case.grid_code.in_(codes))
                            .order_by(Case.updated_at, Case.id).limit(limit)).all()
        return [QueueItem(c.id, c.number, c.category_code, c.updated_at) for c in rows]


def open_proof_card(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> str:
    """Give the supervisor the proof card (Approve / Reject, then the photos) of one queued case.

    Refuses (nothing written) a case no longer awaiting verification (NotNow) and one the supervisor
    handled themself (verification.OwnWork). Returns the case number.
    """
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) is not Status.AWAITING_VERIFICATION:
            raise NotNow(case.number, case.status)
        if supervisor.id in handled_by(session, case):
            raise OwnWork(case.number)
        open_request(session, ctx, case, supervisor, from_queue=True)
        number = case.number
    ctx.on_notifications()
    return number
