"""Per-update middlewares: load the acting person once, then pick their language."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from onegrid.i18n import normalize_locale
from services.context import ServiceContext
from services.people import find_person_by_telegram_id


class PersonMiddleware(BaseMiddleware):
    """Puts `person` (a Person row or None for someone we do not know yet) into handler data."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        ctx: ServiceContext = data["ctx"]
        data["person"] = (
            await asyncio.to_thread(find_person_by_telegram_id, ctx, telegram_user_id=user.id) if user else None
        )
        return await handler(event, data)


class PersonI18nMiddleware(I18nMiddleware):
    """The person's chosen language, else their Telegram language (zh* → zh_CN, other → en)."""

    def __init__(self, i18n: I18n, default_locale: str) -> None:
        super().__init__(i18n=i18n)
        self.default_locale = default_locale

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        person = data.get("person")
        if person is not None and person.locale:
            return person.locale
        user: User | None = data.get("event_from_user")
        return normalize_locale(user.language_code if user else None, self.default_locale)
