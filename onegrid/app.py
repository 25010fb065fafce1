"""The one factory: builds the store, services, bot, dispatcher, sender, scheduler and API from Settings.

Nothing here is module-level state: `build(settings)` returns a `OneGrid` container, and tests
build as many as they like, each pointed at its own database and Bot API server.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from bot.delivery import DeliveryLimits, NotificationSender
from bot.factory import create_bot, create_dispatcher
from onegrid.clock import Clock, SystemClock
from onegrid.settings import Settings
from services.context import ServiceContext
from services.db import make_engine, make_session_factory
from services.gridmap import GridMap

log = logging.getLogger("onegrid")


@dataclass
class OneGrid:
    settings: Settings
    engine: Engine
    ctx: ServiceContext
    scheduler: AsyncIOScheduler
    bot: Bot | None = None
    dispatcher: Dispatcher | None = None
    sender: NotificationSender | None = None
    api: FastAPI | None = None
    last_tick: datetime | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def scheduler_status(self) -> dict[str, Any]:
        return {
            "running": bool(self.scheduler.running),
            "jobs": [job.id for job in self.scheduler.get_jobs()],
            "last_tick": self.last_tick.isoformat() if self.last_tick else None,
        }

    def bot_status(self) -> dict[str, Any]:
        if self.bot is None:
            return {"enabled": False, "hint": "set ONEGRID_BOT_TOKEN to enable the Telegram bot"}
        stats = self.sender.stats if self.sender else None
        return {
            "enabled": True,
            "api_url": self.settings.telegram_api_url,
            "delivery": vars(stats) if stats else None,
        }

    def _tick(self) -> None:
        self.last_tick = self.ctx.clock.now()


def delivery_limits(settings: Settings) -> DeliveryLimits:
    return DeliveryLimits(
        global_per_second=settings.delivery_global_per_second,
        chat_interval_s=settings.delivery_chat_interval_s,
        group_interval_s=settings.delivery_group_interval_s,
        max_attempts=settings.delivery_max_attempts,
    )


def build(settings: Settings, *, clock: Clock | None = None) -> OneGrid:
    """Wire every part of OneGrid from `settings`. Does not start anything or touch the network."""
    from api.app import create_api

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    ctx = ServiceContext(
        sessions=sessions,
        clock=clock or SystemClock(),
        grid_map=GridMap(),
        case_prefix=settings.case_number_prefix,
        timezone=settings.timezone,
        settings=settings,
    )
    scheduler = AsyncIOScheduler(timezone=settings.timezone)
    app = OneGrid(settings=settings, engine=engine, ctx=ctx, scheduler=scheduler)
    scheduler.add_job(app._tick, "interval", seconds=10, id="heartbeat", coalesce=True, max_instances=1)
    if settings.bot_token is not None:
        app.bot = create_bot(settings.bot_token.get_secret_value(), api_url=settings.telegram_api_url)
        app.dispatcher = create_dispatcher(ctx, default_locale=settings.default_locale,
                                           redis_url=settings.redis_url)
        app.sender = NotificationSender(
            bot=app.bot, sessions=sessions, clock=ctx.clock, data_dir=settings.data_dir,
            limits=delivery_limits(settings),
        )
        ctx.on_notifications = app.sender.wake
    app.api = create_api(app)
    return app


async def start_background(app: OneGrid, *, polling_timeout: int = 10) -> None:
    """Start the scheduler and, when a token is set, long polling and the sender (as tasks)."""
    await asyncio.to_thread(app.ctx.grid_map.rebuild, app.ctx.sessions)
    app._tick()
    if not app.scheduler.running:
        app.scheduler.start()
    if app.bot is not None and app.dispatcher is not None and app.sender is not None:
        log.info("Telegram bot: long polling %s", app.settings.telegram_api_url)
        app.tasks.append(asyncio.create_task(
            app.dispatcher.start_polling(app.bot, handle_signals=False, polling_timeout=polling_timeout)))
        app.tasks.append(asyncio.create_task(app.sender.run(app.stop_event,
                                                            poll_interval=app.settings.delivery_poll_interval_s)))
    else:
        log.warning("No ONEGRID_BOT_TOKEN set: the Telegram bot is off. To enable it, set "
                    "ONEGRID_BOT_TOKEN=<token from @BotFather> (and ONEGRID_TELEGRAM_API_URL for a "
                    "city's own Bot API server) and restart.")


async def stop_background(app: OneGrid) -> None:
    """Stop what `start_background` started; deliveries on the wire are finished and recorded."""
    app.stop_event.set()
    if app.dispatcher is not None:
        try:
            await app.dispatcher.stop_polling()
        except RuntimeError:
            pass  # polling had not started
    for task in app.tasks:
        task.cancel()
    await asyncio.gather(*app.tasks, return_exceptions=True)
    app.tasks.clear()
    if app.scheduler.running:
        app.scheduler.shutdown(wait=False)
    if app.bot is not None:
        await app.bot.session.close()


async def serve(app: OneGrid) -> None:
    """Run the API, the scheduler and (when a token is set) the bot and its sender until stopped."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app.api, host=app.settings.api_host, port=app.settings.api_port,
                                           log_level="info"))
    await start_background(app)
    log.info("API on http://%s:%s (docs at /docs, health at /health)", app.settings.api_host, app.settings.api_port)
    try:
        await server.serve()
    finally:
        await stop_background(app)
        app.engine.dispose()
