"""Telegram renderers of the escalation ladder, extensions and supervisor actions on a ping.

Pings carry the escalation card (bot/renderers/supervision_card.py) and the ping buttons; several pings to
one supervisors' group in one sweep batch go as one message (a group takes under 20 messages a minute),
inside the forum topic bound to the area when there is one (`message_thread_id`).
"""

from __future__ import annotations

from bot.renderers.work_text import local_time
import html
from typing import Any

from sqlmodel import Session

from bot.renderers.supervision_card import case_card, lateness, ping_header
from bot.supervision_ui import batch_keyboard, grant_keyboard, ping_keyboard, review_keyboard
from bot.worker_ui import tasks_list_keyboard
from models.events.supervision import (
    CaseEscalated,
    CaseTakenOver,
    ExtensionGranted,
    ExtensionRefused,
    ExtensionRequested,
    GroupsPinged,
    ShelfReviewDue,
)
from models.supervision import EscalationStep, Shelving
from models.tables import Case, Person
from onegrid.i18n import gettext_for
from services.context import ServiceContext
from services.escalation import supervisors_at
from services.notify import enqueue, enqueue_text

_NO_PREVIEW = {"is_disabled": True}


def _tell(session: Session, ctx: ServiceContext, person_id: int | None, case_id: int, render) -> None:  # noqa: ANN001
    """A plain message to one person, worded by `render(gettext)` in their language."""
    person = session.get(Person, person_id) if person_id else None
    if person is None or person.telegram_user_id is None:
        return
    enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
            person_id=person.id, case_id=case_id,
            payload={"text": render(gettext_for(person.locale)), "parse_mode": "HTML"})


# -- pings ----------------------------------------------------------------------------------------------


def case_escalated(session: Session, ctx: ServiceContext, event: CaseEscalated) -> None:
    """Remind the holding workers; send each supervisor the card with the ping buttons."""
    case = session.get(Case, event.case_id)
    now = ctx.clock.now()
    for person_id in event.worker_ids:
        _tell(session, ctx, person_id, case.id, lambda _: ping_header(case.number, event.after, _) + "\n" + _(
            "Please accept or act on it now, or ask for an extension with /extend {number}.").format(
            number=case.number))
    for person_id in event.supervisor_ids:
        person = session.get(Person, person_id)
        _ = gettext_for(person.locale)
        header = ping_header(case.number, event.after, _, repeat=event.repeat)
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                case_id=case.id, payload={"text": case_card(session, ctx, case, person.locale, header=header),
                                          "parse_mode": "HTML", "link_preview_options": _NO_PREVIEW,
                                          "reply_markup": ping_keyboard(_, case.id, event.step_id)})


def groups_pinged(session: Session, ctx: ServiceContext, event: GroupsPinged) -> None:
    """One message per group (and topic), listing up to `escalation_group_batch` cases each."""
    locale = ctx.settings.default_locale
    _ = gettext_for(locale)
    size = max(1, ctx.settings.escalation_group_batch)
    now = ctx.clock.now()
    for group in event.groups:
        items = [(session.get(Case, case_id), session.get(EscalationStep, step_id)) for case_id, step_id in group.items]
        extra = {"message_thread_id": group.message_thread_id} if group.message_thread_id is not None else {}
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            if len(chunk) == 1:
                case, row = chunk[0]
                after = "accept_due" if row.step.startswith("accept") else "handle_due"
                text = case_card(session, ctx, case, locale, header=ping_header(case.number, after, _,
                                                                                repeat=row.repeats))
                markup = ping_keyboard(_, case.id, row.id)
            else:
                lines = [_("🚨 {count} cases need attention:").format(count=len(chunk))]
                for case, row in chunk:
                    due = case.accept_due_at if row.step.startswith("accept") else case.handle_due_at
                    late = lateness(now - due, _) if due else "—"
                    lines.append(_("· {number} — late by {late}").format(number=case.number, late=late))
                text = "\n".join(lines)
                markup = batch_keyboard(_, [(case.id, row.id, case.number) for case, row in chunk])
            payload: dict[str, Any] = {"text": text, "parse_mode": "HTML", "reply_markup": markup, **extra}
            enqueue(session, chat_id=group.chat_id, method="sendMessage", now=now,
                    case_id=chunk[0][0].id if len(chunk) == 1 else None, payload=payload)


def shelf_review_due(session: Session, ctx: ServiceContext, event: ShelfReviewDue) -> None:
    case = session.get(Case, event.case_id)
    shelf = session.get(Shelving, event.shelving_id)
    for person_id in event.supervisor_ids:
        person = session.get(Person, person_id)
        _ = gettext_for(person.locale)
        header = _("📌 Case {number} is on the shelf and due for review today.").format(number=case.number)
        text = case_card(session, ctx, case, person.locale, header=header)
        text += "\n" + _("Shelved because: {reason}").format(reason=html.escape(shelf.reason))
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
                person_id=person.id, case_id=case.id,
                payload={"text": text, "parse_mode": "HTML", "reply_markup": review_keyboard(_, case.id)})


def case_taken_over(session: Session, ctx: ServiceContext, event: CaseTakenOver) -> None:
    """Tell the supervisor how to finish the case they now hold, with its Complete button(s)."""
    supervisor = session.get(Person, event.supervisor_id)
    if supervisor is None or supervisor.telegram_user_id is None or not event.task_ids:
        return
    _ = gettext_for(supervisor.locale)
    text = _("🙋 You hold case {number} now. When the work is done, press Complete and send photos and "
             "your location on site, as a worker does; another supervisor will verify it.").format(
        number=event.case_number)
    enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
            person_id=supervisor.id, case_id=event.case_id,
            payload={"text": text, "parse_mode": "HTML",
                     "reply_markup": tasks_list_keyboard(_, [(t, event.case_number, False) for t in event.task_ids])})


# -- extensions -----------------------------------------------------------------------------------------


def extension_requested(session: Session, ctx: ServiceContext, event: ExtensionRequested) -> None:
    """The grid's supervisors get the card with Grant / Refuse."""
    case = session.get(Case, event.case_id)
    worker = session.get(Person, event.worker_id)
    for sup in supervisors_at(session, case, "grid"):
        _ = gettext_for(sup.locale)
        header = _("⏳ {name} asks for more time on case {number}: {hours} working hours.").format(
            name=html.escape(worker.display_name), number=case.number, hours=round(event.minutes / 60, 1))
        text = case_card(session, ctx, case, sup.locale, header=header)
        text += "\n" + _("Reason: {reason}").format(reason=html.escape(event.reason))
        enqueue(session, chat_id=sup.telegram_user_id, method="sendMessage", now=ctx.clock.now(), person_id=sup.id,
                case_id=case.id, payload={"text": text, "parse_mode": "HTML",
                                          "reply_markup": grant_keyboard(_, case.id, pending=True)})


def extension_granted(session: Session, ctx: ServiceContext, event: ExtensionGranted) -> None:
    due = local_time(event.new_due_at, ctx.timezone)
    _tell(session, ctx, event.requester_id, event.case_id, lambda _: _(
        "⏳ Case {number}: extension granted; handle it by {due}.").format(number=event.case_number, due=due))


def extension_refused(session: Session, ctx: ServiceContext, event: ExtensionRefused) -> None:
    """Tell the worker why and until when; confirm to the supervisor who refused."""
    due = local_time(event.due_at, ctx.timezone)
    _tell(session, ctx, event.requester_id, event.case_id, lambda _: _(
        "✖️ Case {number}: extension refused ({reason}). The deadline stays {due}.").format(
        number=event.case_number, reason=html.escape(event.reason), due=due))
    supervisor = session.get(Person, event.supervisor_id)
    if supervisor is not None and supervisor.telegram_user_id is not None:
        _ = gettext_for(supervisor.locale)
        enqueue_text(session, chat_id=supervisor.telegram_user_id, now=ctx.clock.now(), person_id=supervisor.id,
                     text=_("Extension of case {number} refused; the worker was told.").format(
                         number=event.case_number))
