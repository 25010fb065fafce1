"""回访: after closure, residents say whether the problem is really fixed and rate the handling.

What callers may rely on:
- Only the resident a question was sent to can answer it; anyone else gets `FeedbackNotFound`.
- "Fixed?" is answered once per closure (`AlreadyAnswered` after that); a rating (1–5) and a
  comment may be given once the question is answered, and changed later.
- "Not fixed" reopens the case for rework (返工) with the resident's note, through the case
  lifecycle, when the case is still closed by that same closure and the closure is at most
  `feedback_reopen_days` old; otherwise the answer is recorded and `ReopenRefused` says why.
- Each call is one transaction: the feedback row, the case change and the reply commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from models.lifecycle import Action, Actor, Role, Status, transition
from models.resident import CaseFeedback
from models.tables import Case, Person
from services import cases
from services.context import ServiceContext
from services.db import transaction
from services.residents import Outgoing, queue_messages

COMMENT_MAX = 1000


class FeedbackError(Exception):
    """A refusal the resident can be told about; nothing was written."""


class FeedbackNotFound(FeedbackError):
    pass


class AlreadyAnswered(FeedbackError):
    pass


class ReopenBlocker(StrEnum):
    WINDOW_PASSED = "window_passed"  # closed longer ago than the reopen window
    NOT_CLOSED = "not_closed"  # someone already reopened it, or it was closed again since


class ReopenRefused(FeedbackError):
    def __init__(self, blocker: ReopenBlocker, *, days: int) -> None:
        super().__init__(blocker.value)
        self.blocker, self.days = blocker, days


@dataclass(frozen=True)
class FeedbackView:
    feedback_id: int
    case_id: int
    number: str
    fixed: bool | None
    rating: int | None
    reopened: bool
    case_status: Status
    can_reopen: bool  # "not fixed" would reopen the case now
    window_days: int
    blocker: ReopenBlocker | None = None  # why it would not, when it would not


Render = Callable[[FeedbackView, str], Sequence[Outgoing]]


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


def _finish(session: Session, ctx: ServiceContext, person: Person, view: FeedbackView, chat_id: int,
            render: Render) -> FeedbackView:
    queue_messages(session, ctx, chat_id=chat_id, messages=render(view, person.locale), person_id=person.id,
                   case_id=view.case_id)
    return view


def answer_fixed(ctx: ServiceContext, *, feedback_id: int, person_id: int, fixed: bool, chat_id: int,
                 render: Render) -> FeedbackView:
    """Record "fixed" / "not fixed". "Not fixed" does not reopen yet: `reopen` does, with the note."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        if feedback.fixed is not None:
            raise AlreadyAnswered(str(feedback_id))
        feedback.fixed = fixed
        feedback.answered_at = now
        view = _finish(session, ctx, person, _view(ctx, feedback, case, now), chat_id, render)
    ctx.on_notifications()
    return view


def reopen(ctx: ServiceContext, *, feedback_id: int, person_id: int, note: str, chat_id: int,
           render: Render) -> FeedbackView:
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
        tr = transition(cases.facts_of(case), Action.REOPEN, Actor(Role.RESIDENT, person_id), at=now, note=note)
        cases._change_status(session, ctx, case, tr)  # noqa: SLF001 - the one way a status changes
        feedback.fixed = False
        feedback.answered_at = feedback.answered_at or now
        feedback.reopened = True
        view = _finish(session, ctx, person, _view(ctx, feedback, case, now), chat_id, render)
    ctx.on_notifications()
    return view


def rate(ctx: ServiceContext, *, feedback_id: int, person_id: int, rating: int, chat_id: int,
         render: Render) -> FeedbackView:
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
        view = _finish(session, ctx, person, _view(ctx, feedback, case, now), chat_id, render)
    ctx.on_notifications()
    return view


def add_comment(ctx: ServiceContext, *, feedback_id: int, person_id: int, comment: str, chat_id: int,
                render: Render) -> FeedbackView:
    """Store the resident's comment (trimmed, at most COMMENT_MAX characters)."""
    comment = comment.strip()[:COMMENT_MAX]
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        feedback.comment = comment or None
        view = _finish(session, ctx, person, _view(ctx, feedback, case, now), chat_id, render)
    ctx.on_notifications()
    return view


def reply_only(ctx: ServiceContext, *, feedback_id: int, person_id: int, chat_id: int,
               render: Render) -> FeedbackView:
    """No change: queue `render`'s messages about the feedback (e.g. after "no comment")."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        feedback, case, person = _load(session, feedback_id, person_id)
        view = _finish(session, ctx, person, _view(ctx, feedback, case, now), chat_id, render)
    ctx.on_notifications()
    return view
