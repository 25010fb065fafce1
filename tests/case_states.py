"""A case brought into each lifecycle status the way people get it there: through the services the chat uses.

`build(ctx, db, clock, status)` returns a `Scene`: the case and the people around it. Two workers of the
case's grid and department (W1 holds the case once it is accepted; W2 stands by), a supervisor of the
street who verifies, and the resident who reported it. Where a status means nobody was on duty to take
it (registered, returned), the standby worker W2 is set on duty afterwards, without the pick-up that going
on duty by /duty would run, so an office action finds somebody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from models.lifecycle import Action, Actor, Role, Status, open_case
from models.resident import CaseFollower, FollowKind
from models.tables import Case, Notification, NotificationStatus, Person
from models.work import CaseTask, TaskStatus, WorkOffer
from services import cases, extensions, verification, work
from services.db import transaction
from tests.worker_support import GRID, add_person, add_supervisor, add_worker, offset, picture, point_in, report

W1_TG, W2_TG, SUP_TG, RES_TG = 7101, 7102, 7201, 7301


@dataclass
class Scene:
    case_id: int
    number: str
    w1: int
    w2: int
    supervisor: int
    resident: int


def people(db: Any, clock: Any, *, on_duty: bool) -> tuple[int, int, int, int]:
    now = clock.now()
    w1 = add_worker(db.sessions, now, W1_TG, name="Wang One", on_duty=on_duty)
    w2 = add_worker(db.sessions, now, W2_TG, name="Li Two", on_duty=False)
    sup = add_supervisor(db.sessions, now, SUP_TG, name="Zhang Sup")
    res = add_person(db.sessions, now, telegram_user_id=RES_TG, roles=["resident"], name="Resident")
    return w1, w2, sup, res


def set_on_duty(db: Any, person_id: int, on_duty: bool = True) -> None:
    with transaction(db.sessions) as s:
        s.execute(sa.update(Person).where(Person.id == person_id).values(on_duty=on_duty))


def held_task(db: Any, case_id: int, worker_id: int) -> int:
    with db.sessions() as s:
        return s.exec(select(CaseTask.id).where(CaseTask.case_id == case_id, CaseTask.assignee_id == worker_id,
                                                CaseTask.status == TaskStatus.ACCEPTED)).one()


def accept(ctx: Any, db: Any, case_id: int, worker_id: int) -> None:
    with db.sessions() as s:
        offer_id = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == case_id, WorkOffer.worker_id == worker_id,
                                                     WorkOffer.status == "open")).one()
    work.accept_offer(ctx, offer_id=offer_id, worker_id=worker_id)


def complete(ctx: Any, db: Any, clock: Any, case_id: int, worker_id: int, *, seed: int = 1) -> Any:
    """Complete with a photo and a good live location, as the worker's Complete flow does."""
    with db.sessions() as s:
        case = s.get(Case, case_id)
    draft = work.start_completion(ctx, task_id=held_task(db, case_id, worker_id), worker_id=worker_id)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker_id, data=picture(seed))
    lat, lon = offset(case.lat, case.lon, north_m=15)
    return work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker_id,
                                fix=work.LocationFix(lat=lat, lon=lon, sent_at=clock.now(), accuracy_m=10,
                                                     live_period=600))


def delivered(db: Any) -> None:
    """Every queued message as the sender leaves it once Telegram accepted it (SENT, with a message id), so
    what follows edits the messages people saw rather than taking unsent ones out of the queue."""
    with transaction(db.sessions) as s:
        s.execute(sa.update(Notification).where(Notification.status == NotificationStatus.PENDING).values(
            status=NotificationStatus.SENT, telegram_message_id=Notification.id + 1000))


def version(db: Any, case_id: int) -> int:
    with db.sessions() as s:
        return s.get(Case, case_id).version


def _reported(ctx: Any, db: Any, clock: Any, reporter: int) -> Case:
    """A case only raised (REPORTED): no flow leaves one there today, but the lifecycle and the API allow it."""
    lat, lon = point_in(GRID)
    now = clock.now()
    tr = open_case(Actor(Role.RESIDENT, reporter), at=now)
    with transaction(db.sessions) as s:
        number = cases.next_case_number(s, prefix="SH", now=now, timezone="Asia/Shanghai")
        case = Case(number=number, source="resident", category_code="exposed_garbage", description="garbage",
                    lat=lat, lon=lon, grid_code=GRID, status=Status.REPORTED, reporter_id=reporter,
                    created_at=now, updated_at=now, version=1)
        s.add(case)
        s.flush()
        cases.record(s, case, tr)
        s.expunge(case)
    return case


def build(ctx: Any, db: Any, clock: Any, status: Status) -> Scene:
    """A case in `status` (see the module docstring for how each is reached)."""
    nobody = status in (Status.REGISTERED, Status.RETURNED, Status.REPORTED)
    w1, w2, sup, res = people(db, clock, on_duty=not nobody or status is Status.RETURNED)
    if status is Status.REPORTED:
        case = _reported(ctx, db, clock, res)
        set_on_duty(db, w2)
        return Scene(case.id, case.number, w1, w2, sup, res)
    case = report(ctx, reporter_id=res, photo=picture(900), photo_unique_id="resident-photo")
    with transaction(db.sessions) as s:  # as the resident's report flow records its reporter
        s.add(CaseFollower(case_id=case.id, person_id=res, kind=FollowKind.REPORTER, created_at=clock.now()))
    scene = Scene(case.id, case.number, w1, w2, sup, res)
    if status is Status.REGISTERED:
        set_on_duty(db, w2)
    elif status is Status.RETURNED:
        with db.sessions() as s:
            offer_id = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == case.id)).one()
        work.return_order(ctx, worker_id=w1, reason="not our job", offer_id=offer_id)
        set_on_duty(db, w2)
    elif status is Status.SHELVED:
        extensions.shelve(ctx, case_id=case.id, supervisor_id=sup, reason="waiting for the district",
                          review_at=extensions.review_date(ctx, 7))
    elif status is not Status.DISPATCHED:
        accept(ctx, db, case.id, w1)
        if status is Status.EXTENSION_REQUESTED:
            extensions.request_extension(ctx, case_id=case.id, worker_id=w1, reason="spare part", minutes=480)
        elif status in (Status.AWAITING_VERIFICATION, Status.REWORK, Status.CLOSED):
            complete(ctx, db, clock, case.id, w1)
            if status is Status.REWORK:
                verification.reject(ctx, case_id=case.id, supervisor_id=sup, reason="still dirty",
                                    expected_version=version(db, case.id))
            elif status is Status.CLOSED:
                verification.approve(ctx, case_id=case.id, supervisor_id=sup, expected_version=version(db, case.id))
    set_on_duty(db, w2)
    delivered(db)
    with db.sessions() as s:
        got = Status(s.get(Case, case.id).status)
    assert got is status, (got, status)
    return scene


__all__ = ["Action", "Scene", "accept", "build", "complete", "held_task", "set_on_duty", "version"]
