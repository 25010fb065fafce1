"""回访: after closure, residents say whether the problem is really fixed and rate the handling.

What callers may rely on:
- Only the resident a question was sent to can answer it; anyone else gets `FeedbackNotFound`.
- "Fixed?" is answered once per closure (`AlreadyAnswered` after that); a rating (1–5) and a
  comment may be given once the question is answered, and changed later.
- "Not fixed" reopens the case for rework (返工) with the resident's note, through the case
  lifecycle, when the case is still closed by that same closure and the closure is at most
  `feedback_reopen_days` old; otherwise the answer is recorded and `ReopenRefused` says why.
- Each call is one transaction: the feedback row, the case change and the event (the channel's reply)
  commit together. `FeedbackView` and `ReopenBlocker` live in models/events/resident.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from models.events.resident import (
    CaseReopenedByResident,
    FeedbackAnswered,
    FeedbackCommented,
    FeedbackCommentSkipped,
    FeedbackEvent,
    FeedbackRated,
    FeedbackView,
    ReopenBlocker,
    ReplyTo,
)
from models.lifecycle import Action, Actor, Role, Status, transition
from models.resident import CaseFeedback
from models.tables import Case, Person
from services import cases, rework
from services.context import ServiceContext
from services.db import transaction

COMMENT_MAX = 1000


class FeedbackError(Exception):
    """A refusal the resident can be told about; nothing was written."""


class FeedbackNotFound(FeedbackError):
    pass


class AlreadyAnswered(FeedbackError):
    pass


class ReopenRefused(FeedbackError):
    def __init__(self, blocker: ReopenBlocker, *, days: int) -> None:
        super().__init__(blocker.value)
        self.blocker, self.days = blocker, days


def _load(session: Session, feedback_id: int, person_id: int) -> tuple[CaseFeedback, Case, Person]:
    feedback = session.get(CaseFeedback, feedback_id)
    if feedback is None or feedback.person_id != person_id:
        raise FeedbackNotFound(str(feedback_id))
    case = session.get(Case, feedback.case_id)
    person = session.get(Person, person_id)
    if case is None or person is None or person.deleted_at is not None:
        raise FeedbackNotFound(str(feedback_id))
    return feedback, case, person


def _blocker(ctx: ServiceContext, feedback: CaseFeedback, case: Case, now: datetime) -> ReopenBlocker | None:
    if Status(case.status) is not Status.CLOSED or case.closed_at != feedback.closed_at:
        return ReopenBlocker.NOT_CLOSED
    if now - feedback.closed_at > timedelta(days=ctx.settings.feedback_reopen_days):
        return ReopenBlocker.WINDOW_PASSED
    return None


def _view(ctx: ServiceContext, feedback: CaseFeedback, case: Case, now: datetime) -> FeedbackView:
    blocker = _blocker(ctx, feedback, case, now)
    return FeedbackView(feedback.id, case.id, case.number, feedback.fixed, feedback.rating, feedback.reopened,
                        Status(case.status), blocker is None, ctx.settings.feedback_reopen_days, blocker)


def _publish(session: Session, ctx: ServiceContext, event_type: type[FeedbackEvent], person: Person,
             view: FeedbackView, reply_to: ReplyTo, **fields: object) -> FeedbackView:
    ctx.publish(session, event_type(person_id=person.id, feedback=view, reply_to=reply_to, **fields))
    return view


def answer_fixed(ctx: ServiceContext, *, feedback_id: int, person_id: int, fixed: bool,
                 reply_to: ReplyTo) -> FeedbackView:
    """Record "fixed" / "not fixed". "Not fixed" does not reopen yet: `reopen` does, with the note."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        if feedback.fixed is not None:
            raise AlreadyAnswered(str(feedback_id))
        feedback.fixed = fixed
        feedback.answered_at = now
        view = _publish(session, ctx, FeedbackAnswered, person, _view(ctx, feedback, case, now), reply_to)
    ctx.on_notifications()
    return view


def reopen(ctx: ServiceContext, *, feedback_id: int, person_id: int, note: str, reply_to: ReplyTo) -> FeedbackView:
    """Reopen the case for rework (返工) with `note`; raises `ReopenRefused` when it may not be."""
    note = note.strip()[:2000]
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        if feedback.reopened:
            raise AlreadyAnswered(str(feedback_id))
        blocker = _blocker(ctx, feedback, case, now)
        if blocker is not None:
            raise ReopenRefused(blocker, days=ctx.settings.feedback_reopen_days)
        tr = transition(cases.facts_of(case), Action.REOPEN, Actor(Role.RESIDENT, person_id),
                        at=cases.event_time(ctx, case), note=note)
        cases.change_status(session, ctx, case, tr)  # the one way a status changes
        rework.back_to_workers(session, ctx, case, reason=note)  # the workers hold it again and are told
        feedback.fixed = False
        feedback.answered_at = feedback.answered_at or now
        feedback.reopened = True
        view = _publish(session, ctx, CaseReopenedByResident, person, _view(ctx, feedback, case, now), reply_to)
    ctx.on_notifications()
    return view


def rate(ctx: ServiceContext, *, feedback_id: int, person_id: int, rating: int, comment_invited: bool,
         reply_to: ReplyTo) -> FeedbackView:
    """Store a 1–5 rating of the handling (the KPIs read it later)."""
    if not 1 <= rating <= 5:
        raise ValueError("a rating is 1 to 5")
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        feedback.rating = rating
        feedback.rated_at = now
        if feedback.fixed is None:  # rated without answering: the rating stands on its own
            feedback.answered_at = feedback.answered_at or now
        view = _publish(session, ctx, FeedbackRated, person, _view(ctx, feedback, case, now), reply_to,
                        comment_invited=comment_invited)
    ctx.on_notifications()
    return view


def add_comment(ctx: ServiceContext, *, feedback_id: int, person_id: int, comment: str,
                reply_to: ReplyTo) -> FeedbackView:
    """Store the resident's comment (trimmed, at most COMMENT_MAX characters)."""
    comment = comment.strip()[:COMMENT_MAX]
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        feedback.comment = comment or None
        view = _publish(session, ctx, FeedbackCommented, person, _view(ctx, feedback, case, now), reply_to)
    ctx.on_notifications()
    return view


def skip_comment(ctx: ServiceContext, *, feedback_id: int, person_id: int, reply_to: ReplyTo) -> FeedbackView:
    """The resident declined to comment: nothing changes, `FeedbackCommentSkipped` lets the channel close the prompt."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        view = _publish(session, ctx, FeedbackCommentSkipped, person, _view(ctx, feedback, case, now), reply_to)
    ctx.on_notifications()
    return view
