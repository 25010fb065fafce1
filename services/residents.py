"""Residents: first contact, consent (PIPL), language, account deletion, masking, report limits.

What callers may rely on:
- Before consent nothing about a resident is stored except, if they pick a language, their
  Telegram id and that language (what is needed to answer them in it). `give_consent` creates
  the resident's record; reports refuse people without consent (`ConsentRequired`).
- `delete_account` removes or anonymises every piece of personal data in one transaction:
  name, username, phone and Telegram id are cleared, follows and queued messages dropped,
  feedback comments erased, photo originals deleted; cases, ratings and clean photos stay
  for the city's record, pointing at an anonymous person row.
- Each change publishes its event (`LanguageChosen`, `ConsentGiven`, `AccountDeleted`) in its own
  transaction, so the channel's reply to the person acting exists exactly when the change committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.resident import AccountDeleted, ConsentGiven, LanguageChosen, ReplyTo
from models.lifecycle import Role
from models.resident import CaseFeedback, CaseFollower, ReportReceipt
from models.tables import Notification, Person, Photo
from services.locales import normalize_locale
from services import staff_menus
from services.context import ServiceContext
from services.db import transaction

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


# -- people -------------------------------------------------------------------------------------

def is_staff(person: Person | None) -> bool:
    return person is not None and any(role in STAFF_ROLES for role in person.roles)


def find_by_telegram_id(session: Session, telegram_user_id: int) -> Person | None:
    return session.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()


def set_language(ctx: ServiceContext, *, telegram_user_id: int, locale: str, reply_to: ReplyTo) -> Person:
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
        staff_menus.queue_menu(session, ctx, person)  # a staff member's menu follows their language
        ctx.publish(session, LanguageChosen(person_id=person.id, locale=locale,
                                            consented=person.consented_at is not None, reply_to=reply_to))
    ctx.on_notifications()
    return person


def give_consent(ctx: ServiceContext, *, telegram_user_id: int, display_name: str, username: str | None,
                 telegram_language: str | None, reply_to: ReplyTo) -> Person:
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
        ctx.publish(session, ConsentGiven(person_id=person.id, reply_to=reply_to))
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


def delete_account(ctx: ServiceContext, *, person_id: int, reply_to: ReplyTo) -> None:
    """Remove or anonymise the resident's personal data (see the module docstring); cases stay.

    Raises `StaffAccount` for a worker or supervisor. `AccountDeleted` (the channel's confirmation)
    is the last thing queued to the chat of `reply_to`; every other queued message to it is dropped.
    """
    chat_id = reply_to.chat_id
    now = ctx.clock.now()
    originals: list[str] = []
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        if person is None or person.deleted_at is not None:
            ctx.publish(session, AccountDeleted(locale=person.locale if person else ctx.settings.default_locale,
                                                reply_to=reply_to))
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
        ctx.publish(session, AccountDeleted(locale=person.locale, reply_to=reply_to))
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
