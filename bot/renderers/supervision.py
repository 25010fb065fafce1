"""Telegram renderers of the supervision events (models/events/supervision.py): text, keyboards and parse modes live here.

Verification and closure: bot/renderers/supervision_verification.py; the ladder, extensions and actions on
a ping: bot/renderers/supervision_escalation.py; forum topics: below.
"""

from __future__ import annotations

from services.names import localized
import html

from sqlmodel import Session, select

from bot.renderers import supervision_escalation as escalation
from bot.renderers import supervision_verification as verification
from models.events.supervision import (
    CaseEscalated,
    CaseTakenOver,
    ClosedBySource,
    ClosureApproved,
    ClosureRejected,
    ExtensionGranted,
    ExtensionRefused,
    ExtensionRequested,
    GroupsPinged,
    ShelfReviewDue,
    SourceReportsGone,
    TopicBound,
    TopicUnbound,
    VerificationRequested,
)
from models.tables import Area, Person
from onegrid.i18n import gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue


def reply_in_topic(session: Session, ctx: ServiceContext, *, chat_id: int, message_thread_id: int | None, text: str,
                   person_id: int | None = None) -> None:
    """Queue a reply in the chat, inside the forum topic when there is one."""
    payload = {"text": text, "parse_mode": "HTML"}
    if message_thread_id:
        payload["message_thread_id"] = message_thread_id
    enqueue(session, chat_id=chat_id, method="sendMessage", payload=payload, now=ctx.clock.now(), person_id=person_id)


def _area_name(session: Session, code: str, locale: str) -> str:
    return localized(session.exec(select(Area).where(Area.code == code)).first(), locale, code)


def _topic_reply(session: Session, ctx: ServiceContext, supervisor_id: int, chat_id: int, thread_id: int,
                 text: str) -> None:
    # No person on a group message: a bot removed from the group must not mark the supervisor as blocked.
    reply_in_topic(session, ctx, chat_id=chat_id, message_thread_id=thread_id, text=text,
                   person_id=supervisor_id if chat_id > 0 else None)


def topic_bound(session: Session, ctx: ServiceContext, event: TopicBound) -> None:
    supervisor = session.get(Person, event.supervisor_id)
    _ = gettext_for(supervisor.locale)
    text = _("📌 Escalation pings about {area} now come to this topic.").format(
        area=html.escape(_area_name(session, event.area_code, supervisor.locale)))
    if event.claimed_area_code is not None:
        text += "\n" + _("This group is now the supervisors' group of {area}.").format(
            area=html.escape(_area_name(session, event.claimed_area_code, supervisor.locale)))
    _topic_reply(session, ctx, supervisor.id, event.chat_id, event.message_thread_id, text)


def topic_unbound(session: Session, ctx: ServiceContext, event: TopicUnbound) -> None:
    supervisor = session.get(Person, event.supervisor_id)
    _ = gettext_for(supervisor.locale)
    names = [_area_name(session, code, supervisor.locale) for code in event.area_codes]
    text = (_("Escalation pings about {areas} no longer come to this topic.").format(
        areas=html.escape(", ".join(names))) if names
        else _("No area of yours sends its escalation pings to this topic."))
    _topic_reply(session, ctx, supervisor.id, event.chat_id, event.message_thread_id, text)


RENDERERS: EventTable = {
    VerificationRequested: [verification.verification_requested],
    ClosureApproved: [verification.closure_approved],
    ClosureRejected: [verification.closure_rejected],
    ClosedBySource: [verification.closed_by_source],
    SourceReportsGone: [verification.source_reports_gone],
    CaseEscalated: [escalation.case_escalated],
    GroupsPinged: [escalation.groups_pinged],
    ShelfReviewDue: [escalation.shelf_review_due],
    CaseTakenOver: [escalation.case_taken_over],
    ExtensionRequested: [escalation.extension_requested],
    ExtensionGranted: [escalation.extension_granted],
    ExtensionRefused: [escalation.extension_refused],
    TopicBound: [topic_bound],
    TopicUnbound: [topic_unbound],
}
