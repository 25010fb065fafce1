"""Who may act on a case from supervision (pings, extensions, shelving, the queue), and the refusals.

Every supervisor action checks the case lies in the supervisor's area subtree, or refuses with one of
these exceptions and writes nothing; the channel words them.
"""

from __future__ import annotations

from sqlmodel import Session

from models.lifecycle import Role
from models.tables import Case, Person
from services import dispatch
from services.cases import CaseNotFound


class SupervisionError(Exception):
    """A refusal the supervisor can be told about; nothing was written."""


class NotASupervisor(SupervisionError):
    pass


class OutsideYourArea(SupervisionError):
    pass


class NotNow(SupervisionError):
    """The case is not in a state where this can be done (e.g. closed meanwhile)."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


class NotAGridWorker(SupervisionError):
    pass


class WrongDepartment(SupervisionError):
    pass


def supervisor_and_case(session: Session, supervisor_id: int, case_id: int) -> tuple[Person, Case]:
    """The acting supervisor and the case, or a refusal: not an active supervisor, or the case is
    outside their area's subtree (a replayed button of another street's case lands here)."""
    supervisor = session.get(Person, supervisor_id)
    if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active:
        raise NotASupervisor(str(supervisor_id))
    case = session.get(Case, case_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if case is None:
        raise CaseNotFound(str(case_id))
    if not dispatch.supervises(session, supervisor, case.grid_code):
        raise OutsideYourArea(case.number)
    return supervisor, case

