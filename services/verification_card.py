"""What a supervisor judges on a proof card: the current round's proofs of a case, as data.

Who may not verify a case (`handled_by`) also lives here, since the card and the refusals share it.
The channel renders the card (bot/renderers/supervision_verification.py).
"""

from __future__ import annotations

from services.names import department_name, localized
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from models.tables import Area, Case, Category, Person, Photo
from models.work import CaseTask, Completion, CompletionStatus

@dataclass(frozen=True)
class ProofPart:
    """One department's proof in the current round."""

    department: str
    worker_name: str
    photo_paths: list[str]
    distance_m: float | None
    allowed_m: float | None
    accuracy_m: float | None
    live: bool
    flagged: bool
    problems: list[str]
    time_on_site: timedelta | None  # first proof photo → last good location (None: never within the radius)
    submitted_at: datetime | None


@dataclass(frozen=True)
class ProofCard:
    case_id: int
    number: str
    version: int
    category: str
    grid: str
    address: str | None
    description: str
    parts: list[ProofPart]


def proof_card(session: Session, case: Case, locale: str) -> ProofCard:
    """What a supervisor needs to judge the current round of `case`, names in `locale`."""
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    grid = session.exec(select(Area).where(Area.code == case.grid_code)).first() if case.grid_code else None
    parts = []
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case.id).order_by(CaseTask.id)).all()
    for task in tasks:
        completion = session.exec(select(Completion).where(
            Completion.task_id == task.id, Completion.status == CompletionStatus.SUBMITTED,
        ).order_by(Completion.id.desc())).first()
        if completion is None:
            continue
        worker = session.get(Person, completion.worker_id)
        photos = session.exec(select(Photo).where(Photo.id.in_(completion.photo_ids)).order_by(Photo.id)).all() \
            if completion.photo_ids else []
        parts.append(ProofPart(
            department=department_name(session, task.department_code, locale),
            worker_name=worker.display_name if worker else "—",
            photo_paths=[p.path for p in photos],
            distance_m=completion.distance_m,
            allowed_m=completion.allowed_m,
            accuracy_m=completion.accuracy_m,
            live=completion.live,
            flagged=completion.flagged,
            problems=list(completion.problems),
            time_on_site=_time_on_site(completion, photos),
            submitted_at=completion.submitted_at,
        ))
    return ProofCard(case.id, case.number, case.version, localized(category, locale, case.category_code),
                     localized(grid, locale, case.grid_code or "—"), case.address, case.description, parts)


def _time_on_site(completion: Completion, photos: list[Photo]) -> timedelta | None:
    if completion.last_seen_at is None or not photos:
        return None
    since = min(p.created_at for p in photos if p.created_at is not None)
    until = max(filter(None, [completion.location_at, completion.last_seen_at]))
    return max(until - since, timedelta(0))


def handled_by(session: Session, case: Case) -> set[int]:
    """Everyone who handled a part of the case in any round: none of them may verify it."""
    people = set(session.exec(select(CaseTask.assignee_id).where(
        CaseTask.case_id == case.id, CaseTask.assignee_id.is_not(None))).all())
    people |= set(session.exec(select(Completion.worker_id).where(
        Completion.case_id == case.id, Completion.status != CompletionStatus.ABANDONED)).all())
    if case.handler_id is not None:
        people.add(case.handler_id)
    return people

