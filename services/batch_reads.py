"""Reads the dispatcher makes once for its whole batch, for the work order's renderers to answer from.

A work order shows the reporter's photo and the case's other departments (联勤联动), and its status
change tells the case's followers. Asked per case, each is one query; the dispatcher reads them for
all the cases of its batch in one query each, and the renderers answer from that for the rest of the
transaction. Outside such a batch (a button press,
a reassignment) every call reads the store.

What callers may rely on: the answers are those of the store at the read, and nothing the dispatcher's
transaction does changes them (it adds no photos; the tasks it creates are noted here as it creates them).
"""

from __future__ import annotations

from sqlmodel import Session, select

from models.api import CaseSubmission
from models.tables import Photo
from models.work import CaseTask

_KEY = "batch_reads"


def _memo(session: Session) -> dict[str, dict[int, list]]:
    """What this transaction of `session` has read for its batch (a new transaction starts empty)."""
    tx = session.get_transaction()
    held = session.info.get(_KEY)
    if held is None or held[0] is not tx:
        held = session.info[_KEY] = (tx, {"photos": {}, "tasks": {}, "followers": {}, "submissions": {}})
    return held[1]


def memo(session: Session, kind: str) -> dict[int, list]:
    """The batch's reads of one `kind` ("followers": services/followers.py fills and reads it), by case id."""
    return _memo(session)[kind]


def read_batch(session: Session, case_ids: list[int], *, without_tasks: set[int], residents: list[int] = ()) -> None:
    """The report photos of `case_ids` in one query; `without_tasks` have no tasks yet (their tasks are
    noted by `note_tasks` as dispatch creates them); the Open311 submissions of the `residents`' cases
    (the only ones that can have one) in one query."""
    held = _memo(session)
    if residents:
        found = {row.case_id: row for row in session.exec(
            select(CaseSubmission).where(CaseSubmission.case_id.in_(residents)))}
        held["submissions"].update({case_id: found.get(case_id) for case_id in residents})
    photos: dict[int, list] = {case_id: [] for case_id in case_ids}
    for photo in session.exec(select(Photo).where(Photo.case_id.in_(case_ids), Photo.purpose == "report")
                              .order_by(Photo.id)):
        photos[photo.case_id].append(photo)
    held["photos"].update(photos)
    held["tasks"].update({case_id: [] for case_id in without_tasks})


def note_tasks(session: Session, case_id: int, tasks: list[CaseTask]) -> None:
    """Dispatch created `tasks` for a case of the batch (flushed: they have ids)."""
    known = _memo(session)["tasks"]
    if case_id in known:
        known[case_id] = [*known[case_id], *((task.id, task.department_code) for task in tasks)]


def submission(session: Session, case_id: int) -> CaseSubmission | None:
    """The case's Open311 submission (its answers to the category's questions), or None."""
    known = _memo(session)["submissions"]
    if case_id in known:
        return known[case_id]
    return session.exec(select(CaseSubmission).where(CaseSubmission.case_id == case_id)).first()


def report_photos(session: Session, case_id: int) -> list[Photo]:
    """The reporter's photos of the case, oldest first."""
    known = _memo(session)["photos"].get(case_id)
    if known is not None:
        return list(known)
    return list(session.exec(select(Photo).where(Photo.case_id == case_id, Photo.purpose == "report")
                             .order_by(Photo.id)).all())


def other_departments(session: Session, case_id: int, task_id: int) -> list[str]:
    """The departments of the case's tasks other than `task_id`, in the order the tasks were made."""
    known = _memo(session)["tasks"].get(case_id)
    if known is not None:
        return [code for tid, code in sorted(known) if tid != task_id]
    return list(session.exec(select(CaseTask.department_code).where(CaseTask.case_id == case_id,
                                                                    CaseTask.id != task_id)
                             .order_by(CaseTask.id)).all())
