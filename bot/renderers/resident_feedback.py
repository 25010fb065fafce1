"""Telegram replies to 回访 answers: the question's message turns into the next step (rating, comment)."""

from __future__ import annotations

from sqlmodel import Session

from bot.renderers.resident_outbox import Outgoing, queue
from bot.resident_ui import comment_keyboard, main_keyboard, rating_keyboard
from models.events.resident import (
    CaseReopenedByResident,
    FeedbackAnswered,
    FeedbackCommented,
    FeedbackCommentSkipped,
    FeedbackEvent,
    FeedbackRated,
    FeedbackView,
    ReopenBlocker,
)
from models.lifecycle import Status
from models.tables import Person
from onegrid.i18n import gettext_for
from services.context import ServiceContext


def rating_prompt(_, view: FeedbackView) -> str:  # noqa: ANN001 - a gettext function
    return _("How satisfied are you with how case {number} was handled? 1 = not at all, 5 = very.").format(
        number=view.number)


def not_reopenable(_, view: FeedbackView) -> str:  # noqa: ANN001 - a gettext function
    if view.case_status is not Status.CLOSED:
        return _("Thank you. Case {number} has already been reopened for rework.").format(number=view.number)
    if view.blocker is ReopenBlocker.NOT_CLOSED:  # closed again since this question was asked
        return _("Thank you, your answer is noted. Case {number} was handled again since this question; "
                 "a newer question about it has reached you.").format(number=view.number)
    return _("Thank you for telling us. Case {number} was closed more than {days} days ago, so it cannot be "
             "reopened; please report the problem again with /report.").format(number=view.number,
                                                                                days=view.window_days)


def _reply(session: Session, ctx: ServiceContext, event: FeedbackEvent, *messages: Outgoing) -> None:
    queue(session, ctx, chat_id=event.reply_to.chat_id, messages=messages, person_id=event.person_id,
          case_id=event.feedback.case_id)


def _gettext(session: Session, event: FeedbackEvent):  # noqa: ANN202
    return gettext_for(session.get(Person, event.person_id).locale)


def _stars(view: FeedbackView) -> str:
    return "⭐" * (view.rating or 0)


def feedback_answered(session: Session, ctx: ServiceContext, event: FeedbackAnswered) -> None:
    _, view, message_id = _gettext(session, event), event.feedback, event.reply_to.message_id
    if view.fixed:
        _reply(session, ctx, event, Outgoing(_("Glad it is fixed!") + "\n" + rating_prompt(_, view),
                                             rating_keyboard(view.feedback_id), edit_message_id=message_id))
    elif view.can_reopen:
        _reply(session, ctx, event, Outgoing(_("Sorry to hear that. What is still wrong? Send a short note and I "
                                               "will reopen case {number} for rework.").format(number=view.number),
                                             edit_message_id=message_id))
    else:
        _reply(session, ctx, event, Outgoing(not_reopenable(_, view) + "\n" + rating_prompt(_, view),
                                             rating_keyboard(view.feedback_id), edit_message_id=message_id))


def case_reopened(session: Session, ctx: ServiceContext, event: CaseReopenedByResident) -> None:
    _, view = _gettext(session, event), event.feedback
    _reply(session, ctx, event,
           Outgoing(_("↩️ Case {number} is reopened for rework with your note. I will keep you posted.").format(
               number=view.number), main_keyboard(_)),
           Outgoing(rating_prompt(_, view), rating_keyboard(view.feedback_id)))


def feedback_rated(session: Session, ctx: ServiceContext, event: FeedbackRated) -> None:
    _, view, message_id = _gettext(session, event), event.feedback, event.reply_to.message_id
    thanks = _("You rated case {number}: {stars}. Thank you!").format(number=view.number, stars=_stars(view))
    if not event.comment_invited:
        _reply(session, ctx, event, Outgoing(thanks, edit_message_id=message_id))
        return
    _reply(session, ctx, event, Outgoing(thanks + "\n" + _("Anything to add? Send a comment now, or tap “No comment”."),
                                         comment_keyboard(_, view.feedback_id), edit_message_id=message_id))


def feedback_commented(session: Session, ctx: ServiceContext, event: FeedbackCommented) -> None:
    _, view, message_id = _gettext(session, event), event.feedback, event.reply_to.message_id
    out = [Outgoing(_("📝 Your comment on case {number} is noted. Thank you!").format(number=view.number),
                    main_keyboard(_))]
    if message_id:
        out.insert(0, Outgoing(None, edit_message_id=message_id))  # the "No comment" button is done
    _reply(session, ctx, event, *out)


def comment_skipped(session: Session, ctx: ServiceContext, event: FeedbackCommentSkipped) -> None:
    _, view = _gettext(session, event), event.feedback
    _reply(session, ctx, event, Outgoing(_("You rated case {number}: {stars}. Thank you!").format(
        number=view.number, stars=_stars(view)), edit_message_id=event.reply_to.message_id))
