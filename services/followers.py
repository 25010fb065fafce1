"""Who follows a case, and the 回访 question each of them gets when it closes.

`request_feedback` runs inside the transaction of the closing status change (services/cases.py), so
the question exists exactly when the closure committed. What callers may rely on:
- Recipients are the case's followers (its resident reporter and everyone who reported it again)
  who can still be reached, reporter first; the person who made the change is left out.
- On closure each recipient gets one `CaseFeedback` row for that closure and a `FeedbackRequested`
  event (the channel asks "Is it fixed?" with Yes / No buttons).
The stage messages themselves are the channel's rendering of `CaseStatusChanged` (bot/renderers/).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.resident import FeedbackRequested
from models.lifecycle import Transition
from models.resident import CaseFeedback, CaseFollower
from models.tables import Case, Person
from services import batch_reads
from services.context import ServiceContext


# Built once (asked on every status change): SQLAlchemy reuses its compiled form and cache key.
_FOLLOWERS = (
    select(CaseFollower.case_id, Person)
    .join(CaseFollower, CaseFollower.person_id == Person.id)
    .where(CaseFollower.case_id.in_(sa.bindparam("case_ids", expanding=True)), Person.telegram_user_id.is_not(None),
           Person.deleted_at.is_(None))
    .order_by(CaseFollower.id)
)


def recipients(session: Session, case_id: int, *, exclude_person_id: int | None = None) -> list[Person]:
    """Followers of the case we can still reach, reporter first."""
    rows = batch_reads.memo(session, "followers").get(case_id)
    if rows is None:
        rows = [person for _, person in session.exec(_FOLLOWERS, params={"case_ids": [case_id]})]
    return [p for p in rows if p.id != exclude_person_id]


def read_for(session: Session, case_ids: list[int]) -> None:
    """The reachable followers of many cases in one query (the dispatcher's batch), for `recipients` to
    answer from for the rest of the transaction (the dispatcher adds no followers)."""
    found: dict[int, list[Person]] = {case_id: [] for case_id in case_ids}
    for case_id, person in session.exec(_FOLLOWERS, params={"case_ids": case_ids}):
        found[case_id].append(person)
    batch_reads.memo(session, "followers").update(found)


def request_feedback(session: Session, ctx: ServiceContext, case: Case, tr: Transition) -> None:
    """One 回访 row per reachable follower for the closure `tr`, each published as `FeedbackRequested`."""
    now = ctx.clock.now()
    for person in recipients(session, case.id, exclude_person_id=tr.actor.person_id):
        feedback = CaseFeedback(case_id=case.id, person_id=person.id, closed_at=tr.at, asked_at=now)
        session.add(feedback)
        session.flush()
        ctx.publish(session, FeedbackRequested(feedback_id=feedback.id, case_id=case.id, number=case.number,
                                               person_id=person.id))
