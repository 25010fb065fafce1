"""Telegram renderers of the resident events (models/events/resident.py): text, keyboards and parse modes live here.

The texts are split by what they answer: case stages and the 回访 question (resident_stages.py),
replies to reports and the account (resident_replies.py), 回访 answers (resident_feedback.py).
"""

from __future__ import annotations

from bot.renderers import resident_feedback, resident_replies, resident_stages
from models.events.resident import (
    AccountDeleted,
    CaseReopenedByResident,
    CaseStatusChanged,
    ConsentGiven,
    DraftExpired,
    FeedbackAnswered,
    FeedbackCommented,
    FeedbackCommentSkipped,
    FeedbackRated,
    FeedbackRequested,
    LanguageChosen,
    ReportReceived,
)
from services.bus import EventTable

RENDERERS: EventTable = {
    CaseStatusChanged: [resident_stages.case_status_changed],
    FeedbackRequested: [resident_stages.feedback_requested],
    ReportReceived: [resident_replies.report_received],
    DraftExpired: [resident_replies.draft_expired],
    LanguageChosen: [resident_replies.language_chosen],
    ConsentGiven: [resident_replies.consent_given],
    AccountDeleted: [resident_replies.account_deleted],
    FeedbackAnswered: [resident_feedback.feedback_answered],
    CaseReopenedByResident: [resident_feedback.case_reopened],
    FeedbackRated: [resident_feedback.feedback_rated],
    FeedbackCommented: [resident_feedback.feedback_commented],
    FeedbackCommentSkipped: [resident_feedback.comment_skipped],
}
