"""Telegram replies to what a resident did: a report registered or joined, a draft expired, language,
consent and account deletion. Each is queued in the transaction of the change it reports."""

from __future__ import annotations

from sqlmodel import Session

from bot.renderers.resident_outbox import Outgoing, card_done, queue
from bot.resident_ui import PRIVACY_NOTICE, consent_keyboard, main_keyboard
from models.events.resident import AccountDeleted, ConsentGiven, DraftExpired, LanguageChosen, ReportReceived
from models.resident import ReportKind
from models.tables import Person
from onegrid.i18n import N_, gettext_for
from services.context import ServiceContext
from services.resident_views import local_time

DRAFT_EXPIRED = N_("Your unfinished report expired after {minutes} minutes without activity; nothing was "
                   "stored. Send /report to start again.")


def _locale(session: Session, ctx: ServiceContext, person_id: int | None) -> str:
    person = session.get(Person, person_id) if person_id is not None else None
    return person.locale if person is not None else ctx.settings.default_locale


def report_received(session: Session, ctx: ServiceContext, event: ReportReceived) -> None:
    _ = gettext_for(_locale(session, ctx, event.person_id))
    if event.kind is ReportKind.FOLLOW:
        text = _("👍 Thank you! Your report was added to case <b>{number}</b>. "
                 "I will tell you at each step; /my shows your cases.").format(number=event.number)
    else:
        text = _("✅ Registered as case <b>{number}</b>.").format(number=event.number)
        if event.handle_due_at is not None:
            text += "\n" + _("It should be handled by {due}.").format(due=local_time(event.handle_due_at,
                                                                                     ctx.timezone))
        text += "\n" + _("I will tell you at each step; /my shows your cases.")
    queue(session, ctx, chat_id=event.reply_to.chat_id, person_id=event.person_id, case_id=event.case_id,
          messages=[*card_done(event.reply_to), Outgoing(text, main_keyboard(_))])


def draft_expired(session: Session, ctx: ServiceContext, event: DraftExpired) -> None:
    _ = gettext_for(_locale(session, ctx, event.person_id))
    queue(session, ctx, chat_id=event.chat_id, person_id=event.person_id,
          messages=[Outgoing(_(DRAFT_EXPIRED).format(minutes=event.minutes), main_keyboard(_))])


def language_chosen(session: Session, ctx: ServiceContext, event: LanguageChosen) -> None:
    _ = gettext_for(event.locale)
    messages = [Outgoing(_("Language set: English."), main_keyboard(_))]
    if not event.consented:
        # Asked from the first greeting: repeat the consent question in the new language.
        messages.append(Outgoing(_(PRIVACY_NOTICE), consent_keyboard(_, locale=event.locale)))
    queue(session, ctx, chat_id=event.reply_to.chat_id, person_id=event.person_id, messages=messages)


def consent_given(session: Session, ctx: ServiceContext, event: ConsentGiven) -> None:
    _ = gettext_for(_locale(session, ctx, event.person_id))
    thanks = Outgoing(_("Thank you. You can now report problems; /delete removes your data at any time."),
                      main_keyboard(_))
    queue(session, ctx, chat_id=event.reply_to.chat_id, person_id=event.person_id,
          messages=[*card_done(event.reply_to), thanks])


def account_deleted(session: Session, ctx: ServiceContext, event: AccountDeleted) -> None:
    _ = gettext_for(event.locale)
    bye = Outgoing(_("Your data has been deleted. Thank you for helping the city. Send /start if you ever want "
                     "to come back."), {"remove_keyboard": True})
    # No person id on these rows: nothing ties the chat to the deleted person any more.
    queue(session, ctx, chat_id=event.reply_to.chat_id, messages=[*card_done(event.reply_to), bye])
