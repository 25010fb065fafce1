"""Events of the resident side: case stages a follower hears about, reports, 回访 answers, the account.

The ones a resident causes carry `reply_to`, the conversation the action came from, so the channel
answers there in the same transaction (and may replace the card whose button was pressed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from models.events import Event
from models.lifecycle import Action, Status
from models.resident import ReportKind


@dataclass(frozen=True)
class ReplyTo:
    """Where the acting person is talking to us: a chat, and the message (a card with buttons) they used."""

    chat_id: int
    message_id: int | None = None


# -- case stages ----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class CaseStatusChanged(Event):
    """Case `case_id` moved from `from_status` to `to_status` by `action` (published on every change)."""

    case_id: int
    number: str
    from_status: Status | None
    to_status: Status
    action: Action
    actor_person_id: int | None
    note: str | None
    at: datetime


@dataclass(frozen=True, kw_only=True)
class FeedbackRequested(Event):
    """回访: follower `person_id` is asked whether closed case `number` is really fixed (row `feedback_id`)."""

    feedback_id: int
    case_id: int
    number: str
    person_id: int


# -- reports --------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ReportReceived(Event):
    """A resident's draft became case `number` (NEW_CASE) or joined it (FOLLOW)."""

    case_id: int
    number: str
    person_id: int
    kind: ReportKind
    handle_due_at: datetime | None
    reply_to: ReplyTo


@dataclass(frozen=True, kw_only=True)
class DraftExpired(Event):
    """A quiet report draft was dropped after `minutes` without activity; nothing was stored."""

    chat_id: int
    person_id: int | None
    minutes: int


# -- the account ------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class LanguageChosen(Event):
    person_id: int
    locale: str
    consented: bool  # False: the consent question is asked again in the new language
    reply_to: ReplyTo


@dataclass(frozen=True, kw_only=True)
class ConsentGiven(Event):
    person_id: int
    reply_to: ReplyTo  # `message_id`: the consent question, whose buttons are now done


@dataclass(frozen=True, kw_only=True)
class AccountDeleted(Event):
    """The person's data is gone; the chat in `reply_to` gets the last word."""

    locale: str
    reply_to: ReplyTo


# -- 回访 ---------------------------------------------------------------------------------------------

class ReopenBlocker(StrEnum):
    WINDOW_PASSED = "window_passed"  # closed longer ago than the reopen window
    NOT_CLOSED = "not_closed"  # someone already reopened it, or it was closed again since


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


@dataclass(frozen=True, kw_only=True)
class FeedbackEvent(Event):
    """Base of what a resident did with a 回访 question; `feedback` is its state afterwards."""

    person_id: int
    feedback: FeedbackView
    reply_to: ReplyTo


@dataclass(frozen=True, kw_only=True)
class FeedbackAnswered(FeedbackEvent):
    """"Fixed" or "not fixed" recorded; "not fixed" reopens only with the resident's note (`CaseReopenedByResident`)."""


@dataclass(frozen=True, kw_only=True)
class CaseReopenedByResident(FeedbackEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class FeedbackRated(FeedbackEvent):
    comment_invited: bool  # the resident may add a comment now


@dataclass(frozen=True, kw_only=True)
class FeedbackCommented(FeedbackEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class FeedbackCommentSkipped(FeedbackEvent):
    pass
