"""A button press answered twice must not fail its update.

An update can be handled again: after a crash, or when another process takes it over once its inbox
lease passed (services/inbox.py). Its handler then answers the same callback query a second time, and
Telegram refuses that ("query is too old and response timeout expired or query ID is invalid"), as
it refuses an answer after about 15 seconds. The answer only stops the button's spinner, so the
refusal is logged and the handler goes on to do its real work.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, TelegramMethod
from aiogram.methods.base import Response, TelegramType

log = logging.getLogger(__name__)


class LateCallbackAnswers(BaseRequestMiddleware):
    """Turns Telegram's refusal of a late or repeated answerCallbackQuery into a logged no-op."""

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType] | Any:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            if isinstance(method, AnswerCallbackQuery) and "query is too old" in exc.message:
                log.info("a button press was answered late or twice; carrying on (%s)", exc.message)
                return True
            raise
