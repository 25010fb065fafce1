"""Telling a case's followers, in their own language, the stages that matter to a resident.

What callers may rely on:
- Recipients are the case's reachable followers (services/followers.py); the person who made the
  change is not told about their own action (their own reply says it).
- Only dispatched, being handled, awaiting verification, closed, returned to rework, extended, on
  hold, taken up again, cancelled as invalid and merged are told. Internal steps (reassigned,
  returned by a worker, extension asked or refused) send nothing.
- On closure each recipient also gets the 回访 question "Is it fixed?" with Yes / No buttons
  (`FeedbackRequested`, one per `CaseFeedback` row).
"""

from __future__ import annotations

import html

from sqlmodel import Session, select

from bot.resident_ui import feedback_question
from models.events.resident import CaseStatusChanged, FeedbackRequested
from models.lifecycle import Action, Status
from models.tables import Case, Category, Person
from onegrid.i18n import N_, gettext_for
from services.context import ServiceContext
from services.followers import recipients
from services.notify import enqueue_text
from services.resident_views import category_name

# (to status, action) → message; None as action: any action reaching that status.
STAGE_MESSAGES: dict[tuple[Status, Action | None], str] = {
    (Status.DISPATCHED, Action.DISPATCH): N_(
        "📨 Case {number} ({category}) has been passed to the grid's workers."),
    (Status.IN_PROGRESS, Action.ACCEPT): N_("🔧 A grid worker is now handling case {number} ({category})."),
    (Status.IN_PROGRESS, Action.GRANT_EXTENSION): N_(
        "⏳ The handling deadline of case {number} ({category}) was extended; /my shows the new one."),
    (Status.AWAITING_VERIFICATION, None): N_(
        "🔍 The work on case {number} ({category}) is done and is being checked by a supervisor."),
    (Status.CLOSED, None): N_("✅ Case {number} ({category}) is closed."),
    (Status.REWORK, Action.REJECT): N_(
        "↩️ Case {number} ({category}) did not pass the check and was returned for rework."),
    (Status.REWORK, Action.REOPEN): N_(
        "↩️ Case {number} ({category}) was reopened for rework: a resident reported it is not fixed."),
    (Status.SHELVED, None): N_("⏸ Case {number} ({category}) is on hold: it cannot be solved right now."),
    (Status.REGISTERED, Action.UNSHELVE): N_("▶️ Case {number} ({category}) is being taken up again."),
    (Status.CANCELLED, None): N_("🚫 Case {number} ({category}) was cancelled as invalid. Reason: {note}"),
    (Status.MERGED, None): N_(
        "🔗 Case {number} ({category}) was merged with another report of the same problem."),
}

FEEDBACK_QUESTION = N_("Is the problem of case {number} ({category}) really fixed?")


def stage_message(to_status: Status, action: Action) -> str | None:
    """The msgid followers are told for this change, or None for an internal step."""
    return STAGE_MESSAGES.get((to_status, action)) or STAGE_MESSAGES.get((to_status, None))


def _category_label(session: Session, case_id: int, locale: str) -> str:
    case = session.get(Case, case_id)
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    return html.escape(category_name(category, case.category_code, locale))


def case_status_changed(session: Session, ctx: ServiceContext, event: CaseStatusChanged) -> None:
    template = stage_message(event.to_status, event.action)
    if template is None:
        return
    now = ctx.clock.now()
    for person in recipients(session, event.case_id, exclude_person_id=event.actor_person_id):
        # No deadline in the text: whoever grants an extension moves it after this transition.
        _ = gettext_for(person.locale)
        text = _(template).format(number=event.number, category=_category_label(session, event.case_id, person.locale),
                                  note=html.escape(event.note or "—"))
        enqueue_text(session, chat_id=person.telegram_user_id, text=text, now=now, person_id=person.id,
                     case_id=event.case_id)


def feedback_requested(session: Session, ctx: ServiceContext, event: FeedbackRequested) -> None:
    person = session.get(Person, event.person_id)
    if person is None or person.telegram_user_id is None:
        return
    _ = gettext_for(person.locale)
    text = _(FEEDBACK_QUESTION).format(number=event.number,
                                       category=_category_label(session, event.case_id, person.locale))
    enqueue_text(session, chat_id=person.telegram_user_id, text=text, now=ctx.clock.now(), person_id=person.id,
                 case_id=event.case_id, reply_markup=feedback_question(_, event.feedback_id))
