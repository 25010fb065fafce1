"""What the worker handlers share: the role filter, the conversation states, and the refusal texts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiogram import F
from aiogram.filters import Filter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from models.lifecycle import Role, Status
from models.tables import Person
from models.work import OfferStatus
from services import work
from services.context import ServiceContext
from services.notify import send_reply


class ReturnFlow(StatesGroup):
    reason = State()


class CompletionFlow(StatesGroup):
    photos = State()
    location = State()


class HasRole(Filter):
    """Passes for a known person holding one of `roles` (active or not: deactivated people are told so)."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, event: TelegramObject, person: Person | None = None) -> bool:
        return person is not None and any(person.has_role(role) for role in self.roles)


NOT_A_COMMAND = ~F.text.startswith("/")


async def reply(ctx: ServiceContext, message: Message, text: str, person: Person | None,
                reply_markup: dict | None = None) -> None:
    """Answer a refusal or a read-only request (nothing changed, so nothing to queue with it)."""
    await asyncio.to_thread(send_reply, ctx, chat_id=message.chat.id, text=text, reply_markup=reply_markup,
                            person_id=person.id if person else None)


def status_label(status: str) -> str:
    """A case status in the reader's words."""
    labels = {
        Status.REPORTED: _("reported"),
        Status.REGISTERED: _("registered"),
        Status.DISPATCHED: _("dispatched"),
        Status.IN_PROGRESS: _("in progress"),
        Status.EXTENSION_REQUESTED: _("waiting for an extension decision"),
        Status.AWAITING_VERIFICATION: _("awaiting verification"),
        Status.REWORK: _("sent back for rework"),
        Status.RETURNED: _("returned to dispatch"),
        Status.SHELVED: _("shelved"),
        Status.CLOSED: _("closed"),
        Status.CANCELLED: _("cancelled"),
        Status.MERGED: _("merged into another case"),
    }
    return labels.get(status, status)


def refusal(exc: work.WorkError) -> str:
    """What to tell a worker whose action was refused, and what to do next."""
    if isinstance(exc, work.WorkerInactive):
        return _("Your worker account is deactivated. Ask your supervisor if this is a mistake.")
    if isinstance(exc, work.OfferUnavailable):
        if exc.why == OfferStatus.TAKEN:
            return _("Work order {number} was already taken by another worker.").format(number=exc.number)
        return _("Work order {number} is no longer offered to you.").format(number=exc.number)
    if isinstance(exc, work.TaskNotOpen):
        if exc.status in ("done", Status.AWAITING_VERIFICATION.value, "submitted"):
            return _("Case {number} was already submitted and awaits verification.").format(number=exc.number)
        return _("Case {number} cannot be completed now (it is {status}).").format(
            number=exc.number, status=status_label(exc.status))
    if isinstance(exc, work.ReturnNotAllowed):
        return _("Case {number} cannot be returned now; ask your supervisor to reassign it.").format(number=exc.number)
    if isinstance(exc, work.NotYourOrder):
        return _("This work order is not yours.")
    if isinstance(exc, work.ReasonRequired):
        return _("Please write the reason in a few words.")
    return _("That cannot be done now.")


def fix_of(message: Message) -> work.LocationFix:
    """The shared location as the work rules judge it (services/work_rules.py)."""
    location = message.location
    sent_at = message.edit_date or message.date
    if isinstance(sent_at, int):
        sent_at = datetime.fromtimestamp(sent_at, UTC)
    elif sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    return work.LocationFix(
        lat=location.latitude, lon=location.longitude, sent_at=sent_at, accuracy_m=location.horizontal_accuracy,
        live_period=location.live_period, forwarded=message.forward_origin is not None,
        venue=message.venue is not None, via_bot=message.via_bot is not None, message_id=message.message_id)


def location_refusal(judgement: work.LocationJudgement) -> str:
    problems = judgement.problems
    if work.LocationProblem.FORWARDED in problems:
        return _("This location was forwarded. Send your own location from the site, not a forwarded one.")
    if work.LocationProblem.VENUE in problems:
        return _("This is a place picked on the map, not your position. Share your own location "
                 "(📎 → Location).")
    if work.LocationProblem.VIA_BOT in problems:
        return _("This location came through another bot. Share your own location (📎 → Location).")
    if work.LocationProblem.CLEARLY_FAR in problems:
        return _("📍 You are {distance} m from the case point (±{accuracy} m); at most {allowed} m is accepted. "
                 "This cannot be submitted: go to the place and send your location from there.").format(
            distance=round(judgement.distance_m), accuracy=round(judgement.accuracy_m),
            allowed=round(judgement.allowed_m))
    minutes = max(1, round(judgement.age_s / 60))
    return _("This location was sent {minutes} min ago, which is too old to prove you are on site. "
             "Send your location again now.").format(minutes=minutes)
