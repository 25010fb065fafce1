"""A supervisor's staff: listing the workers of their area, and deactivating a worker (services/invitations.py).

Deactivation publishes `WorkerDeactivated` after the worker's offers were retracted and held orders
returned, in the same transaction; the channel tells the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from models.work_lifecycles import OfferAction
from models.events.staff import WorkerDeactivated
from models.events.work import RetractReason
from models.lifecycle import Actor, Role
from models.tables import Case, Person
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services import dispatch
from services.areas import area_chain
from services.cases import StaleCase
from services.context import ServiceContext
from services.db import transaction
from services.invitation_errors import AlreadyInactive, NotAllowed, PersonNotFound
from services.task_release import take_back


def area_within(session: Session, area_code: str | None, within: str | None) -> bool:
    """Whether `area_code` is `within` or lies below it; everything is within None (the whole store)."""
    if within is None:
        return True
    if area_code is None:
        return False
    return any(a.code == within for a in area_chain(session, area_code))



@dataclass(frozen=True)
class StaffMember:
    person_id: int
    name: str
    area_code: str
    department_code: str | None
    on_duty: bool


@dataclass(frozen=True)
class StaffPage:
    members: list[StaffMember]
    page: int
    has_more: bool


def _supervisor(session, supervisor_id: int) -> Person:  # noqa: ANN001
    supervisor = session.get(Person, supervisor_id)
    if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active \
            or supervisor.area_code is None:
        raise NotAllowed("not an active supervisor")
    return supervisor


def staff_in_scope(ctx: ServiceContext, *, supervisor_id: int, page: int = 0, page_size: int = 10) -> StaffPage:
    """Active workers in the supervisor's area (and the areas below it), by area then name."""
    with ctx.sessions() as session:
        supervisor = _supervisor(session, supervisor_id)
        people = session.exec(select(Person).where(Person.active.is_(True), Person.area_code.is_not(None),
                                                   Person.id != supervisor.id)).all()
        inside: dict[str, bool] = {}
        members = []
        for person in people:
            if not person.has_role(Role.WORKER):
                continue
            if person.area_code not in inside:
                inside[person.area_code] = any(a.code == supervisor.area_code
                                               for a in area_chain(session, person.area_code))
            if inside[person.area_code]:
                members.append(StaffMember(person.id, person.display_name or str(person.id), person.area_code,
                                           person.department_code, person.on_duty))
        members.sort(key=lambda m: (m.area_code, m.name, m.person_id))
        start = max(page, 0) * page_size
        return StaffPage(members[start:start + page_size], max(page, 0), len(members) > start + page_size)


@dataclass(frozen=True)
class Deactivation:
    name: str
    returned: int  # held orders sent back to dispatch
    withdrawn: int  # open offers taken back


def deactivate_worker(ctx: ServiceContext, *, worker_id: int, supervisor_id: int) -> Deactivation:
    """Deactivate a worker of the supervisor's area; their open work goes back to dispatch."""

    def authorize(session, worker: Person | None) -> tuple[Actor, str]:  # noqa: ANN001
        supervisor = _supervisor(session, supervisor_id)
        if worker is None or not worker.has_role(Role.WORKER) or worker.id == supervisor.id:
            raise NotAllowed("not a worker")
        if not dispatch.supervises(session, supervisor, worker.area_code):
            raise NotAllowed("outside the supervisor's area")
        return Actor(Role.SUPERVISOR, supervisor.id), supervisor.display_name

    return _deactivate(ctx, worker_id, authorize)


def deactivate_worker_for_office(ctx: ServiceContext, *, worker_id: int, within: str | None, actor: Actor,
                                 by_name: str) -> Deactivation:
    """`deactivate_worker` for the office (an API key acting as `actor`), for workers in `within`'s subtree.

    The worker is told `by_name` deactivated them. Raises PersonNotFound (unknown, or outside
    `within`: nothing changes), NotAllowed (the person is not a worker) or AlreadyInactive.
    """

    def authorize(session, worker: Person | None) -> tuple[Actor, str]:  # noqa: ANN001
        if worker is None or not area_within(session, worker.area_code, within):
            raise PersonNotFound(str(worker_id))
        if not worker.has_role(Role.WORKER):
            raise NotAllowed("not a worker")
        return actor, by_name

    return _deactivate(ctx, worker_id, authorize)


def _deactivate(ctx: ServiceContext, worker_id: int, authorize) -> Deactivation:  # noqa: ANN001
    for attempt in range(3):
        try:
            result = _deactivate_once(ctx, worker_id, authorize)
        except StaleCase:
            if attempt == 2:
                raise
            continue
        ctx.on_notifications()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _deactivate_once(ctx: ServiceContext, worker_id: int, authorize) -> Deactivation:  # noqa: ANN001
    with transaction(ctx.sessions) as session:
        worker = session.get(Person, worker_id)
        actor, by_name = authorize(session, worker)
        if not worker.active:
            raise AlreadyInactive(worker.display_name)
        now = ctx.clock.now()
        worker.active, worker.on_duty = False, False
        session.add(worker)
        session.flush()
        withdrawn = returned = 0
        for offer in session.exec(select(WorkOffer).where(WorkOffer.worker_id == worker.id,
                                                          WorkOffer.status == OfferStatus.OPEN)).all():
            case = session.get(Case, offer.case_id)
            dispatch.retract_offer(session, ctx, offer, action=OfferAction.WITHDRAW, reason=RetractReason.DEACTIVATED)
            withdrawn += 1
            task = session.get(CaseTask, offer.task_id)
            if task.status == TaskStatus.OFFERED and not dispatch.open_offers(session, task.id):
                dispatch.offer_task(session, ctx, case, task)
                dispatch.ensure_dispatched(session, ctx, case)
        held = session.exec(select(CaseTask).where(CaseTask.assignee_id == worker.id,
                                                   CaseTask.status == TaskStatus.ACCEPTED)).all()
        for task in held:
            case = take_back(session, ctx, task, worker_id=worker.id, actor=actor, note="worker deactivated", now=now)
            dispatch.offer_task(session, ctx, case, task)
            returned += 1
        ctx.publish(session, WorkerDeactivated(worker_id=worker.id, by_name=by_name, returned=returned,
                                               withdrawn=withdrawn))
        return Deactivation(worker.display_name, returned, withdrawn)
