"""What the supervision handlers share: the wording of refusals, and replies to read-only requests."""

from __future__ import annotations

import asyncio

from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from models.lifecycle import LifecycleError
from models.tables import Person
from services import extensions, supervision_access
from services.cases import CaseNotFound
from services.context import ServiceContext
from services.notify import send_reply


def refusal(exc: Exception) -> str:
    if isinstance(exc, supervision_access.OutsideYourArea):
        return _("This case is outside your area.")
    if isinstance(exc, supervision_access.NotASupervisor):
        return _("Only an active supervisor of this area can do that.")
    if isinstance(exc, supervision_access.NotNow):
        return _("Case {number} cannot be changed that way now.").format(number=exc.number)
    if isinstance(exc, supervision_access.NotAGridWorker):
        return _("That person is not an active worker of the case's grid.")
    if isinstance(exc, supervision_access.WrongDepartment):
        return _("That worker's department has no part in this case.")
    if isinstance(exc, extensions.NotYourCase):
        return _("You do not hold this case.")
    if isinstance(exc, extensions.AlreadyPending):
        return _("An extension request for this case is already waiting for the supervisor.")
    if isinstance(exc, extensions.ReasonRequired):
        return _("Please write the reason in a few words.")
    if isinstance(exc, extensions.BadDuration):
        return _("That duration is not possible.")
    if isinstance(exc, CaseNotFound):
        return _("This case does not exist.")
    return _("That cannot be done now.")


REFUSALS = (supervision_access.SupervisionError, extensions.ExtensionError, CaseNotFound, LifecycleError)


async def say(ctx: ServiceContext, chat_id: int, person: Person, text: str, markup: dict | None = None) -> None:
    """A reply to a question, a read-only request or a refusal: nothing changed, so its own transaction."""
    await asyncio.to_thread(send_reply, ctx, chat_id=chat_id, text=text, reply_markup=markup, person_id=person.id)


async def call(query: CallbackQuery, fn, /, **kw):  # noqa: ANN001, ANN202
    """Run one service; on a refusal answer the button with the reason and return None."""
    try:
        return await asyncio.to_thread(fn, **kw)
    except REFUSALS as exc:
        await query.answer(refusal(exc), show_alert=True)
        return None
