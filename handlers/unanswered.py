"""The last router: every callback query that no other handler took gets an answer.

A button from an old message, a button of a role the person no longer (or never) had, or
callback data forged by a modified client would otherwise leave the spinner turning until
Telegram gives up. The answer is a short refusal in the person's language; nothing changes.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _


def build_router() -> Router:
    """A fresh Router each call; include it after every other router."""
    router = Router(name="unanswered")
    router.callback_query.register(refuse_button)
    return router


async def refuse_button(query: CallbackQuery) -> None:
    await query.answer(_("This button is not available to you, or it has expired."), show_alert=True)
