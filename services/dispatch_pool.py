"""Who can take a task, and who oversees an area: the people dispatch chooses from.

Workers are the on-duty, active, reachable workers of a department in an area, least loaded first;
supervisors are those of the nearest level of an area's chain (grid → street → district → city) that has any.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session, func, select

from models.lifecycle import OPEN, Role
from models.tables import Case, Person, reachable
from models.patrol import PatrolReport
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services import reference
from services.areas import area_chain


# Built once (asked for every task dispatched): SQLAlchemy reuses its compiled form and cache key.
_ON_DUTY_IN_AREAS = select(Person).where(
    Person.area_code.in_(sa.bindparam("areas", expanding=True)),
    Person.on_duty.is_(True),
    Person.active.is_(True),
    reachable(),
    Person.deleted_at.is_(None),
    Person.blocked_bot_at.is_(None),
)
_ON_DUTY = _ON_DUTY_IN_AREAS.where(Person.department_code == sa.bindparam("department"))

_POOLS = "dispatch_pools"  # session.info: (transaction, areas read, {(area, department): [on-duty people]})
_LOADS = "dispatch_loads"  # session.info: (transaction, {worker id: [tasks accepted, offers open]})


def read_pools(session: Session, area_codes: Iterable[str]) -> None:
    """Read the on-duty people of `area_codes` in one query, for `find_workers` to answer from for the
    rest of this transaction of `session` (the dispatcher's batch: it changes nobody's duty or area)."""
    areas = set(area_codes)
    pools: dict[tuple[str | None, str | None], list[Person]] = {}
    if areas:
        for person in session.exec(_ON_DUTY_IN_AREAS, params={"areas": sorted(areas)}):
            pools.setdefault((person.area_code, person.department_code), []).append(person)
    session.info[_POOLS] = (session.get_transaction(), areas, pools)
    session.info.pop(_LOADS, None)


def _on_duty(session: Session, areas: list[str], department_code: str) -> list[Person]:
    """The on-duty people of `department_code` in `areas`: from the batch's read when it covers them."""
    held = session.info.get(_POOLS)
    if held is not None and held[0] is session.get_transaction() and held[1].issuperset(areas):
        return [person for area in areas for person in held[2].get((area, department_code), ())]
    return list(session.exec(_ON_DUTY, params={"areas": areas, "department": department_code}).all())


def find_workers(session: Session, *, area_code: str, department_code: str, exclude: Iterable[int] = (),
                 limit: int | None = None, then: str | None = None) -> list[Person]:
    """On-duty, active, reachable workers of `department_code` in `area_code`, least loaded first.

    `then`: the area whose workers are taken when `area_code` has none (a grid's street pool), read
    in the same query. Load is open orders held, then open offers; ties go to the longest-serving (lowest id).
    """
    excluded = set(exclude)
    areas = [area_code] if then is None or then == area_code else [area_code, then]
    rows = _on_duty(session, areas, department_code)
    eligible = [p for p in rows if p.has_role(Role.WORKER) and p.id not in excluded]
    workers = [p for p in eligible if p.area_code == areas[0]] or [p for p in eligible if p.area_code != areas[0]]
    if len(workers) <= 1:
        return workers  # nothing to rank: the load counts below would not change the answer
    loads = _batch_loads(session, [w.id for w in workers]) or _load_counts(session, [w.id for w in workers])
    workers.sort(key=lambda w: (*loads.get(w.id, (0, 0)), w.id))
    return workers if limit is None else workers[:limit]


def _load_counts(session: Session, ids: list[int]) -> dict[int, list[int]]:
    """[tasks accepted, offers open] of each of `ids`, in open cases (a case ended elsewhere is nobody's load)."""
    open_case = Case.status.in_([s.value for s in OPEN])
    held = dict(session.exec(
        select(CaseTask.assignee_id, func.count()).join(Case, Case.id == CaseTask.case_id)
        .where(CaseTask.assignee_id.in_(ids), CaseTask.status == TaskStatus.ACCEPTED, open_case)
        .group_by(CaseTask.assignee_id)
    ).all())
    offered = dict(session.exec(
        select(WorkOffer.worker_id, func.count()).join(Case, Case.id == WorkOffer.case_id)
        .where(WorkOffer.worker_id.in_(ids), WorkOffer.status == OfferStatus.OPEN, open_case)
        .group_by(WorkOffer.worker_id)
    ).all())
    return {i: [held.get(i, 0), offered.get(i, 0)] for i in ids}


def _batch_loads(session: Session, ids: list[int]) -> dict[int, list[int]] | None:
    """In a transaction that read its pools (`read_pools`): the loads of every worker of those pools, read
    at the first need in two queries and kept up to date by `note_offer`; None elsewhere."""
    pools = session.info.get(_POOLS)
    if pools is None or pools[0] is not session.get_transaction():
        return None
    held = session.info.get(_LOADS)
    if held is None or held[0] is not pools[0]:
        every = sorted({p.id for people in pools[2].values() for p in people if p.has_role(Role.WORKER)})
        held = session.info[_LOADS] = (pools[0], _load_counts(session, every))
    return held[1] if all(i in held[1] for i in ids) else None


def note_offer(session: Session, worker_id: int) -> None:
    """An offer to `worker_id` was just opened in this transaction: one more open offer in the batch's loads."""
    held = session.info.get(_LOADS)
    if held is not None and held[0] is session.get_transaction() and worker_id in held[1]:
        held[1][worker_id][1] += 1


def forget_loads(session: Session) -> None:
    """The batch's loads may count offers a failed savepoint took back: read them afresh at the next need."""
    session.info.pop(_LOADS, None)


def handed_back_by(session: Session, task_id: int) -> set[int]:
    """Workers who returned this task (before or after accepting), and the finder of a patrol case who
    handed it to dispatch; it is not offered to them again."""
    returned = set(session.exec(
        select(WorkOffer.worker_id).where(
            WorkOffer.task_id == task_id, WorkOffer.status.in_([OfferStatus.DECLINED, OfferStatus.RETURNED])
        )
    ).all())
    finder = session.exec(select(PatrolReport.finder_id).join(CaseTask, CaseTask.case_id == PatrolReport.case_id)
                          .where(CaseTask.id == task_id, PatrolReport.handed_to_dispatch.is_(True))).first()
    return returned | ({finder} if finder is not None else set())


def parent_code(session: Session, area_code: str | None) -> str | None:
    if area_code is None:
        return None
    area = reference.area(session, area_code)
    return area.parent_code if area is not None else None


def supervisors_of(session: Session, area_code: str | None, *, exclude: Iterable[int] = ()) -> list[Person]:
    """Active supervisors of the nearest level of `area_code`'s chain (grid → street → district → city) that has any."""
    if area_code is None:
        return []
    excluded = set(exclude)
    for area in area_chain(session, area_code):
        people = session.exec(
            select(Person).where(
                Person.area_code == area.code,
                Person.active.is_(True),
                reachable(),
                Person.deleted_at.is_(None),
            ).order_by(Person.id)
        ).all()
        found = [p for p in people if p.has_role(Role.SUPERVISOR) and p.id not in excluded]
        if found:
            return found
    return []


def supervises(session: Session, supervisor: Person, area_code: str | None) -> bool:
    """Whether `supervisor`'s area is `area_code` or one of its ancestors."""
    if not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active or supervisor.area_code is None:
        return False
    if area_code is None:
        return False
    return any(a.code == supervisor.area_code for a in area_chain(session, area_code))
