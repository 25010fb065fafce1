"""The one place where Bot and Dispatcher are built (tests build their own through it too)."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.utils.i18n import I18n

from bot.delivery_limits import UrgencyGate
from bot.late_answers import LateCallbackAnswers
from bot.pace import PacedRequests
from bot.storage import create_storage
from bot.throttle import SheddingEventIsolation
from bot.middlewares import PersonI18nMiddleware, PersonMiddleware
from handlers import build_router
from onegrid.i18n import DOMAIN, LOCALES_DIR
from services.context import ServiceContext


def create_bot(token: str, *, api_url: str, timeout: float = 30.0, gate: UrgencyGate | None = None) -> Bot:
    """A Bot talking to `api_url` (the official server, a city's own Bot API server, or the emulator).

    With `gate` (bot/pace.py) every message a handler posts takes a slot of the bot-wide pace first.
    """
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url.rstrip("/")), timeout=timeout)
    session.middleware(LateCallbackAnswers())  # an update handled again answers its press again (bot/late_answers.py)
    if gate is not None:
        session.middleware(PacedRequests(gate))
    return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


def create_dispatcher(ctx: ServiceContext, *, default_locale: str = "zh_CN",
                      redis_url: str | None = None) -> Dispatcher:
    """A Dispatcher with OneGrid's routers; services reach handlers as the `ctx` parameter.

    Conversation state lives in the case store (or Redis), so a restart mid-conversation loses nothing.
    """
    # One update at a time per conversation (albums, double taps), a flood shed (bot/throttle.py).
    isolation = SheddingEventIsolation(max_pending=ctx.settings.max_pending_updates_per_user)
    dp = Dispatcher(storage=create_storage(ctx.sessions, redis_url), events_isolation=isolation, ctx=ctx)
    dp.update.outer_middleware(PersonMiddleware())
    i18n = I18n(path=LOCALES_DIR, default_locale=default_locale, domain=DOMAIN)
    PersonI18nMiddleware(i18n, default_locale).setup(dp)
    dp.include_router(build_router())
    return dp
