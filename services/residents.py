"""Residents: first contact, consent (PIPL), language, account deletion, masking, report limits.

What callers may rely on:
- Before consent nothing about a resident is stored except, if they pick a language, their
  Telegram id and that language (what is needed to answer them in it). `give_consent` creates
  the resident's record; reports refuse people without consent (`ConsentRequired`).
- `delete_account` removes or anonymises every piece of personal data in one transaction:
  name, username, phone and Telegram id are cleared, follows and queued messages dropped,
  feedback comments erased, photo originals deleted; cases, ratings and clean photos stay
  for the city's record, pointing at an anonymous person row.
- Replies to the person acting now are queued in the same transaction as the change they
  report (`Outgoing`, `queue_messages`), so a message exists exactly when the change committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Role
from models.resident import CaseFeedback, CaseFollower, ReportReceipt
from models.tables import Notification, Person, Photo
from onegrid.i18n import normalize_locale
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue, enqueue_text
from services.privacy import mask_phone

log = logging.getLogger(__name__)

STAFF_ROLES = frozenset({Role.WORKER.value, Role.SUPERVISOR.value, Role.DISPATCHER.value})


class ResidentError(Exception):
    """A refusal the resident can be told about; nothing was written."""


class ConsentRequired(ResidentError):
    pass


class StaffAccount(ResidentError):
    """Staff accounts are managed by their supervisor, not deleted from the chat."""


class ReportLimitReached(ResidentError):
    def __init__(self, *, count: int, limit: int, retry_at: datetime) -> None:
        super().__init__(f"{count} reports in the last hour (limit {limit})")
        self.count, self.limit, self.retry_at = count, limit, retry_at


@dataclass(frozen=True)
class Outgoing:
    """One message to the chat of the person acting now.

    A new message (`edit_message_id` None) or an edit of one of the bot's messages: its text,
    or only its inline keyboard when `text` is None. `reply_markup` is Bot API JSON.
    """

    text: str | None
    reply_markup: dict[str, Any] | None = None
    edit_message_id: int | None = None


def queue_messages(session: Session, ctx: ServiceContext, *, chat_id: int, messages: Sequence[Outgoing],
                   person_id: int | None = None, case_id: int | None = None) -> None:
    """Queue `messages` to `chat_id` inside `session`'s transaction, in order."""
    now = ctx.clock.now()
    for m in messages:
        if m.edit_message_id is None:
            if m.text is None:
                raise ValueError("a new message needs text")
            enqueue_text(session, chat_id=chat_id, text=m.text, now=now, reply_markup=m.reply_markup,
                         person_id=person_id, case_id=case_id)
            continue
        payload: dict[str, Any] = {"message_id": m.edit_message_id}
        if m.reply_markup is not None:
            payload["reply_markup"] = m.reply_markup
        if m.text is None:
            method = "editMessageReplyMarkup"
        else:
            method = "editMessageText"
            payload.update(text=m.text, parse_mode="HTML")
        enqueue(session, chat_id=chat_id, method=method, payload=payload, now=now, person_id=person_id,
                case_id=case_id)


def send(ctx: ServiceContext, *, chat_id: int, messages: Sequence[Outgoing], person_id: int | None = None) -> None:
    """Queue replies that change nothing else (a menu, a prompt), in their own transaction."""
    if not messages:
        return
    with transaction(ctx.sessions) as session:
        queue_messages(session, ctx, chat_id=chat_id, messages=messages, person_id=person_id)
    ctx.on_notifications()


# -- people -------------------------------------------------------------------------------------

def is_staff(person: Person | None) -> bool:
    return person is not None and any(role in STAFF_ROLES for role in person.roles)


def find_by_telegram_id(session: Session, telegram_user_id: int) -> Person | None:
    return session.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()


def set_language(ctx: ServiceContext, *, telegram_user_id: int, locale: str, chat_id: int,
                 messages: Sequence[Outgoing]) -> Person:
    """Remember `locale` as the person's chosen language (creating a bare record if needed)."""
    locale = normalize_locale(locale)
    with transaction(ctx.sessions) as session:
        person = find_by_telegram_id(session, telegram_user_id)
        if person is None:
            # Only the id and the language: no name, nothing else, until consent.
            person = Person(telegram_user_id=telegram_user_id, roles=[Role.RESIDENT.value],
                            created_at=ctx.clock.now())
            session.add(person)
        person.locale = locale
        person.locale_chosen = True
        person.blocked_bot_at = None
        session.flush()
        queue_messages(session, ctx, chat_id=chat_id, messages=messages, person_id=person.id)
    ctx.on_notifications()
    return person


def give_consent(ctx: ServiceContext, *, telegram_user_id: int, display_name: str, username: str | None,
                 telegram_language: str | None, chat_id: int, messages: Sequence[Outgoing]) -> Person:
    """Record the resident's consent (PIPL) and their name; idempotent for someone who already agreed."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        person = find_by_telegram_id(session, telegram_user_id)
        if person is None:
            person = Person(telegram_user_id=telegram_user_id, roles=[Role.RESIDENT.value], created_at=now,
                            locale=normalize_locale(telegram_language, ctx.settings.default_locale))
            session.add(person)
        if person.consented_at is None:
            person.consented_at = now
        if Role.RESIDENT.value not in person.roles:
            person.roles = [*person.roles, Role.RESIDENT.value]
        person.display_name = display_name[:200]
        person.username = username[:64] if username else None
        person.blocked_bot_at = None
        session.flush()
        queue_messages(session, ctx, chat_id=chat_id, messages=messages, person_id=person.id)
    ctx.on_notifications()
    return person


def follow_telegram_language(ctx: ServiceContext, *, person_id: int, telegram_language: str | None) -> None:
    """Unless the person chose a language with /lang, keep following their Telegram language."""
    if not telegram_language:
        return
    locale = normalize_locale(telegram_language, ctx.settings.default_locale)
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        if person is not None and not person.locale_chosen and person.locale != locale:
            person.locale = locale


def delete_account(ctx: ServiceContext, *, person_id: int, chat_id: int,
                   messages: Sequence[Outgoing]) -> None:
    """Remove or anonymise the resident's personal data (see the module docstring); cases stay.

    Raises `StaffAccount` for a worker or supervisor. The confirmation in `messages` is the
    last thing queued to this chat; every other queued message to it is dropped.
    """
    now = ctx.clock.now()
    originals: list[str] = []
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        if person is None or person.deleted_at is not None:
            queue_messages(session, ctx, chat_id=chat_id, messages=messages)
            return
        if is_staff(person):
            raise StaffAccount(str(person_id))
        session.execute(sa.delete(CaseFollower).where(CaseFollower.person_id == person_id))
        session.execute(sa.update(CaseFeedback).where(CaseFeedback.person_id == person_id).values(comment=None))
        for photo in session.exec(select(Photo).where(Photo.uploader_id == person_id,
                                                      Photo.original_path.is_not(None))):
            originals.append(photo.original_path)
            photo.original_path = None
        # The delivery log of this chat holds its id and the texts we sent: not the city's record.
        # A row the sender holds right now may go too: the sender records nothing for a vanished row.
        session.execute(sa.delete(Notification).where(
            sa.or_(Notification.person_id == person_id, Notification.chat_id == chat_id)))
        person.display_name = ""
        person.username = None
        person.phone = None
        person.telegram_user_id = None
        person.consented_at = None
        person.blocked_bot_at = None
        person.active = False
        person.deleted_at = now
        queue_messages(session, ctx, chat_id=chat_id, messages=messages)
    _remove_files(ctx, originals)
    ctx.on_notifications()


def _remove_files(ctx: ServiceContext, relative_paths: Sequence[str]) -> None:
    for rel in relative_paths:
        path = ctx.settings.data_dir / rel
        try:
            path.unlink(missing_ok=True)
        except OSError:  # the next sweep tries again: the row no longer names it, so log it loudly
            log.exception("could not delete photo original %s", path)


# -- report limits --------------------------------------------------------------------------------

def check_report_limit(session: Session, ctx: ServiceContext, *, person_id: int) -> None:
    """Raise `ReportLimitReached` when the person made `report_limit_per_hour` reports in the last hour."""
    limit = ctx.settings.report_limit_per_hour
    since = ctx.clock.now() - timedelta(hours=1)
    times = session.exec(
        select(ReportReceipt.created_at)
        .where(ReportReceipt.person_id == person_id, ReportReceipt.created_at > since)
        .order_by(ReportReceipt.created_at)
    ).all()
    if len(times) >= limit:
        # The oldest report in the window has to age out for the next one to fit.
        retry_at = times[len(times) - limit] + timedelta(hours=1)
        raise ReportLimitReached(count=len(times), limit=limit, retry_at=retry_at)


def report_allowed(ctx: ServiceContext, *, person_id: int) -> None:
    """`check_report_limit` in its own read-only session (for the start of a report)."""
    with ctx.sessions() as session:
        check_report_limit(session, ctx, person_id=person_id)


# -- masking --------------------------------------------------------------------------------------



def reporter_label(person: Person | None, gettext: Callable[[str], str]) -> str:
    """How staff see a reporter: never the name or username; a masked phone or a pseudonym."""
    if person is None or person.deleted_at is not None:
        return gettext("anonymous resident")
    if person.phone:
        return gettext("resident {phone}").format(phone=mask_phone(person.phone))
    return gettext("resident R{number}").format(number=f"{person.id:06d}")
