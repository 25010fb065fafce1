"""Telling the reporter and followers what happened to their case.

`on_status_change` runs inside the transaction of every status change (services/cases.py),
so the message is queued exactly when the change commits.

What callers may rely on:
- Recipients are the case's followers (its resident reporter and everyone who reported it
  again) who still have a Telegram account with us; the person who made the change is not told
  about their own action (their handler answers them).
- Each is told in their own language, only at the stages that matter to a resident:
  dispatched, being handled, awaiting verification, closed, returned to rework, extended,
  on hold, taken up again, cancelled as invalid, merged. Internal steps (reassigned, returned by a
  worker, extension asked or refused) send nothing.
- On closure each recipient also gets the 回访 question "Is it fixed?" with Yes / No buttons,
  backed by a `CaseFeedback` row for that closure.
"""

from __future__ import annotations

import html

from sqlmodel import Session, select

from bot.resident_ui import feedback_question
from models.lifecycle import Action, Status, Transition
from models.resident import CaseFeedback, CaseFollower
from models.tables import Case, Category, Person
from onegrid.i18n import N_, gettext_for
from services.context import ServiceContext
from services.notify import enqueue_text
from services.resident_views import category_name

# (to status, action) → message; None as action: any action reaching that status.
_MESSAGES: dict[tuple[Status, Action | None], str] = {
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


def _message_for(tr: Transition) -> str | None:
    return _MESSAGES.get((tr.to_status, tr.action)) or _MESSAGES.get((tr.to_status, None))


def recipients(session: Session, case_id: int, *, exclude_person_id: int | None = None) -> list[Person]:
    """Followers of the case we can still reach, reporter first."""
    rows = session.exec(
        select(Person)
        .join(CaseFollower, CaseFollower.person_id == Person.id)
        .where(CaseFollower.case_id == case_id, Person.telegram_user_id.is_not(None),
               Person.deleted_at.is_(None))
        .order_by(CaseFollower.id)
    ).all()
    return [p for p in rows if p.id != exclude_person_id]


def on_status_change(session: Session, ctx: ServiceContext, case: Case, tr: Transition) -> None:
    """Queue notifications for the people following `case` after `tr`."""
    template = _message_for(tr)
    if template is None:
        return
    people = recipients(session, case.id, exclude_person_id=tr.actor.person_id)
    if not people:
        return
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    now = ctx.clock.now()
    for person in people:
        # No deadline in the text: whoever grants an extension moves it after this transition.
        _ = gettext_for(person.locale)
        values = {
            "number": case.number,
            "category": html.escape(category_name(category, case.category_code, person.locale)),
            "note": html.escape(tr.note or "—"),
        }
        enqueue_text(session, chat_id=person.telegram_user_id, text=_(template).format(**values), now=now,
                     person_id=person.id, case_id=case.id)
        if tr.to_status is Status.CLOSED:
            feedback = CaseFeedback(case_id=case.id, person_id=person.id, closed_at=tr.at, asked_at=now)
            session.add(feedback)
            session.flush()
            enqueue_text(session, chat_id=person.telegram_user_id, text=_(FEEDBACK_QUESTION).format(**values),
                         now=now, person_id=person.id, case_id=case.id,
                         reply_markup=feedback_question(_, feedback.id))
