"""The one factory: builds the store, services, bot, dispatcher, sender, scheduler and API from Settings.

Nothing here is module-level state: `build(settings)` returns a `OneGrid` container, and tests
build as many as they like, each pointed at its own database and Bot API server.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import uvicorn
from aiogram import Bot, Dispatcher
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from prometheus_client import start_http_server
from sqlalchemy.engine import Engine

from api.app import create_api
from bot.delivery import DeliveryLimits, NotificationSender
from bot.delivery_limits import UrgencyGate
from bot.factory import create_bot, create_dispatcher
from bot.pace import make_gate
from bot.polling import InboxPolling
from bot.sandbox import Sandbox, SandboxRefused
from onegrid import heap
from onegrid.clock import Clock, SystemClock
from onegrid.jobs import add_jobs
from onegrid.sandbox_wecom import WecomPanes, with_sandbox_wecom
from onegrid.settings import Settings
from onegrid.wecom_app import WecomChannel, build_wecom
from onegrid.wiring import make_bus
from services.context import ServiceContext
from services.db import make_engine, make_session_factory
from services.dispatcher import CaseDispatcher
from services.gridmap import GridMap
from services.inbox import InboxProcessor
from services.job_lease import process_name
from services.leadership import Leadership, token_name
from services.telegram_webhook import CHANNEL as TELEGRAM, telegram_handler
from services.upstream import UpstreamRelay, make_client, poll_upstream_once

log = logging.getLogger("onegrid")


# Names of the bot's background tasks, as /health/ready looks for them (one of the first two runs).
BOT_TASKS = ("telegram-polling", "inbox", "telegram-sender")


@dataclass
class OneGrid:
    settings: Settings
    engine: Engine
    ctx: ServiceContext
    scheduler: AsyncIOScheduler
    bot: Bot | None = None
    dispatcher: Dispatcher | None = None
    sender: NotificationSender | None = None
    pace: UrgencyGate | None = None
    case_dispatcher: CaseDispatcher | None = None
    api: FastAPI | None = None
    last_tick: datetime | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # The case-store API's background parts (services/upstream.py).
    relay: UpstreamRelay | None = None
    upstream_client: httpx.AsyncClient | None = None
    # The durable inbox (services/inbox.py): every Telegram update, by webhook or long polling, is
    # stored first and handled from here. `webhook_processor` is the same object in webhook mode.
    inbox: InboxProcessor | None = None
    webhook_processor: InboxProcessor | None = None
    polling: InboxPolling | None = None
    # Sandbox mode (bot/sandbox.py): no bot token, the bot talks to the built-in Bot API emulator.
    sandbox: Sandbox | None = None
    # The WeCom / 政务微信 channel (onegrid/wecom_app.py), when every WeCom setting is present.
    wecom: WecomChannel | None = None
    # Several processes on one PostgreSQL (docs/DEPLOY.md): this process's name in job leases, and the
    # singleton loops (a bot's sender, the relay) it runs only while it holds their lock.
    holder: str = field(default_factory=process_name)
    leaders: dict[str, Leadership] = field(default_factory=dict)

    def lead(self, kind: str, key: str, work: Any) -> Any:
        """`work(stop)` run only while this process leads `kind` for `key` (a token: hashed, never stored)."""
        leadership = self.leaders.setdefault(kind, Leadership(self.engine, token_name(kind, key)))
        return lambda stop: leadership.run(stop, work)

    def scheduler_status(self) -> dict[str, Any]:
        return {
            "running": bool(self.scheduler.running),
            "jobs": [job.id for job in self.scheduler.get_jobs()],
            "last_tick": self.last_tick.isoformat() if self.last_tick else None,
        }

    def bot_status(self) -> dict[str, Any]:
        if self.sandbox is not None:  # a bot runs, but nothing reaches Telegram
            stats = self.sender.stats if self.sender else None
            return {"enabled": False, "hint": "set ONEGRID_BOT_TOKEN to enable the Telegram bot",
                    "sandbox": {**self.sandbox.status(), "delivery": vars(stats) if stats else None}}
        if self.bot is None:
            return {"enabled": False, "hint": "set ONEGRID_BOT_TOKEN to enable the Telegram bot"}
        stats = self.sender.stats if self.sender else None
        leadership = self.leaders.get("telegram-sender")
        return {
            "enabled": True,
            "api_url": self.settings.telegram_api_url,
            "delivery": vars(stats) if stats else None,
            # Several processes: one sends for the bot, the others stand by (docs/DEPLOY.md).
            "sender": "active" if leadership is None or leadership.leader else "standby",
        }

    def bot_readiness(self) -> dict[str, Any]:
        """`{"ok": ..., "required": ...}`: with a bot configured, its update loop and sender must be running."""
        if self.bot is None:
            return {"ok": True, "required": False}
        running = {task.get_name() for task in self.tasks if not task.done()}
        missing = [name for name in BOT_TASKS if name not in running]
        if self.webhook_processor is not None:  # webhook mode: updates arrive over HTTP, nobody polls
            missing = [name for name in missing if name != "telegram-polling"]
        check: dict[str, Any] = {"ok": not missing, "required": True}
        if missing:
            check["problem"] = f"the bot is configured but not running ({', '.join(missing)})"
        return check

    def heartbeat(self) -> None:
        """Record that the scheduler is alive (shown by `scheduler_status`)."""
        self.last_tick = self.ctx.clock.now()


def delivery_limits(settings: Settings) -> DeliveryLimits:
    return DeliveryLimits(
        global_per_second=settings.delivery_global_per_second,
        window_count=settings.delivery_window_count,
        window_s=settings.delivery_window_s,
        burst=settings.delivery_burst,
        chat_interval_s=settings.delivery_chat_interval_s,
        group_interval_s=settings.delivery_group_interval_s,
        max_attempts=settings.delivery_max_attempts,
    )


class ConfigurationError(ValueError):
    """Settings that OneGrid refuses to start with; the message says what to set."""


_WEBHOOK_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def check_webhook_settings(settings: Settings) -> None:
    """Webhook mode needs a secret Telegram will echo (1-256 of A-Z a-z 0-9 _ -); refuse it otherwise."""
    if not settings.webhook_url:
        return
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if not secret:
        raise ConfigurationError("ONEGRID_WEBHOOK_URL is set but ONEGRID_WEBHOOK_SECRET is not: webhook mode "
                                 "refuses to run without a secret token")
    if len(secret) > 256 or not set(secret) <= _WEBHOOK_SECRET_CHARS:
        raise ConfigurationError("ONEGRID_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")


def build(settings: Settings, *, clock: Clock | None = None) -> OneGrid:
    """Wire every part of OneGrid from `settings`. Does not start anything or touch the network."""
    check_webhook_settings(settings)
    settings = with_sandbox_wecom(settings)  # ONEGRID_SANDBOX_WECOM=on: generated WeCom credentials
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
        bus=make_bus(),
    )
    scheduler = AsyncIOScheduler(timezone=settings.timezone)
    app = OneGrid(settings=settings, engine=engine, ctx=ctx, scheduler=scheduler,
                  case_dispatcher=CaseDispatcher(ctx, poll_interval=settings.dispatch_poll_interval_s,
                                                 gather_s=settings.dispatch_gather_ms / 1000))
    ctx.on_registered = app.case_dispatcher.wake  # inline until start_background starts its loop
    if settings.sandbox_active:
        app.sandbox = Sandbox(settings, ctx)  # the bot below is pointed at its emulator on start
    if settings.bot_token is not None or app.sandbox is not None:
        token = app.sandbox.token if app.sandbox is not None else settings.bot_token.get_secret_value()
        # One bot-wide pace for the sender and the handlers' replies; through Redis across processes.
        app.pace = make_gate(token, settings.delivery_global_per_second, settings.pace_redis_url or settings.redis_url,
                             count=settings.delivery_window_count, window=settings.delivery_window_s,
                             burst=settings.delivery_burst)
        app.bot = create_bot(token, api_url=app.sandbox.api_url if app.sandbox else settings.telegram_api_url,
                             gate=app.pace)
        app.dispatcher = create_dispatcher(ctx, default_locale=settings.default_locale,
                                           redis_url=settings.redis_url)
        app.sender = NotificationSender(
            bot=app.bot, sessions=sessions, clock=ctx.clock, data_dir=settings.data_dir,
            limits=delivery_limits(settings), gate=app.pace,
        )
        ctx.on_notifications = app.sender.wake
        bot, dispatcher = app.bot, app.dispatcher
        # Up to 100 updates (one getUpdates batch) in hand at once, started in update_id order; the
        # dispatcher's events isolation keeps each chat in order and sheds one user's flood.
        handle = telegram_handler(lambda update: dispatcher.feed_raw_update(bot, update))
        app.inbox = InboxProcessor(ctx, {TELEGRAM: handle},
                                   lease=timedelta(seconds=settings.inbox_lease_s), concurrency={TELEGRAM: 100})
        if settings.webhook_url and app.sandbox is None:
            app.webhook_processor = app.inbox
    if settings.upstream_url:
        app.upstream_client = make_client(settings)
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else None
        app.relay = UpstreamRelay(ctx, app.upstream_client, base_url=settings.upstream_url, api_key=key)
        wake_sender = ctx.on_notifications

        def _wake_both() -> None:  # a committed change may have queued both messages and outbox rows
            wake_sender()
            app.relay.wake_threadsafe()

        ctx.on_notifications = _wake_both
    add_jobs(app)  # onegrid/jobs.py: store jobs once per period across processes
    app.api = create_api(app)
    if settings.wecom_enabled:
        app.wecom = build_wecom(ctx, app.api)
        if app.sandbox is not None:  # the sandbox's WeCom emulator, and the demo worker's pane on it
            app.sandbox.pane_channel = WecomPanes(ctx, app.wecom)
    return app


async def _poll_upstream(app: OneGrid, stop: asyncio.Event) -> None:
    settings = app.settings
    key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else None
    while not stop.is_set():
        try:
            counts = await poll_upstream_once(app.ctx, app.upstream_client, base_url=settings.upstream_url,
                                              api_key=key)
            if counts:
                log.info("upstream poll: %s", counts)
        except Exception as exc:  # noqa: BLE001 - the upstream may be down; the cursor has not moved
            log.warning("upstream poll failed, will retry: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.upstream_poll_interval_s)
        except TimeoutError:
            pass


async def start_background(app: OneGrid, *, polling_timeout: int = 10) -> None:
    """Start the scheduler and, when a token is set, long polling and the sender (as tasks)."""
    if app.sandbox is not None:
        app.sandbox.check_binding()  # a non-loopback API host is refused before anything starts
    await asyncio.to_thread(app.ctx.grid_map.rebuild, app.ctx.sessions)
    if app.sandbox is not None and not app.sandbox.running:
        await app.sandbox.start(app.bot)
    app.heartbeat()
    if not app.scheduler.running:
        app.scheduler.start()
    app.tasks.append(asyncio.create_task(app.case_dispatcher.run(app.stop_event), name="dispatcher"))
    if app.bot is not None and app.dispatcher is not None and app.sender is not None and app.inbox is not None:
        if app.webhook_processor is not None:
            log.info("Telegram bot: webhook mode at %s", app.settings.webhook_url)
            await app.bot.set_webhook(app.settings.webhook_url,
                                      secret_token=app.settings.webhook_secret.get_secret_value())
        # The routers' startup hooks (command menus), which aiogram's own polling would have run.
        await app.dispatcher.emit_startup(bot=app.bot, dispatcher=app.dispatcher, bots=[app.bot],
                                          **app.dispatcher.workflow_data)
        if app.webhook_processor is None:
            log.info("Telegram bot: long polling %s",
                     app.sandbox.api_url if app.sandbox else app.settings.telegram_api_url)
            # Each update is stored before getUpdates confirms it (bot/polling.py), then handled from the inbox.
            app.polling = InboxPolling(app.bot, app.ctx, app.inbox, timeout=polling_timeout,
                                       allowed_updates=app.dispatcher.resolve_used_update_types())
            app.tasks.append(asyncio.create_task(app.polling.run(app.stop_event), name="telegram-polling"))
        # Updates stored before a crash or restart are handled first, then new ones as they come.
        app.tasks.append(asyncio.create_task(app.inbox.run(app.stop_event), name="inbox"))
        # One sender per bot token in the whole deployment (services/leadership.py), the others stand by.
        async def send_here(stop: asyncio.Event) -> None:
            # What a dead sender had in hand goes out now, but not within a chat's pace of its last sends.
            await app.sender.take_over()
            await app.sender.run(stop, poll_interval=app.settings.delivery_poll_interval_s)

        send = app.lead("telegram-sender", app.bot.token, send_here)
        app.tasks.append(asyncio.create_task(send(app.stop_event), name="telegram-sender"))
    if app.wecom is not None:
        wecom_app_key = f"{app.settings.wecom_corp_id}:{app.settings.wecom_agent_id}"  # one sender per WeCom app
        log.info("WeCom channel: sending through %s, callbacks at /wecom/callback", app.settings.wecom_api_base)
        app.tasks.extend(app.wecom.start(app.stop_event, app.settings.delivery_poll_interval_s,
                                         lead=lambda work: app.lead("wecom-sender", wecom_app_key, work)))
    if app.relay is not None:
        log.info("Upstream sync: relaying the outbox to %s", app.settings.upstream_url)
        relay = app.lead("upstream-relay", app.settings.upstream_url, app.relay.run)
        app.tasks.append(asyncio.create_task(relay(app.stop_event), name="upstream-relay"))
        if app.settings.upstream_poll:
            poll = app.lead("upstream-poll", app.settings.upstream_url, lambda stop: _poll_upstream(app, stop))
            app.tasks.append(asyncio.create_task(poll(app.stop_event), name="upstream-poll"))
    if app.sandbox is not None:
        log.warning("No ONEGRID_BOT_TOKEN set: sandbox mode. The bot talks to the built-in Bot API emulator "
                    "on %s instead of Telegram; try OneGrid in your browser at %s . "
                    "Set ONEGRID_BOT_TOKEN to use Telegram, or ONEGRID_SANDBOX=off to run without a bot.",
                    app.sandbox.api_url, app.sandbox.console_url)
    elif app.bot is None:
        log.warning("No ONEGRID_BOT_TOKEN set: the Telegram bot is off. To enable it, set "
                    "ONEGRID_BOT_TOKEN=<token from @BotFather> (and ONEGRID_TELEGRAM_API_URL for a "
                    "city's own Bot API server) and restart.")


async def stop_background(app: OneGrid) -> None:
    """Stop what `start_background` started; deliveries on the wire are finished and recorded."""
    app.stop_event.set()
    for task in app.tasks:
        task.cancel()
    await asyncio.gather(*app.tasks, return_exceptions=True)
    app.tasks.clear()
    if app.scheduler.running:
        app.scheduler.shutdown(wait=False)
    if app.bot is not None:
        await app.bot.session.close()
    if app.pace is not None:
        await app.pace.aclose()
    if app.sandbox is not None:
        await app.sandbox.stop()
    if app.upstream_client is not None:
        await app.upstream_client.aclose()
    if app.wecom is not None:
        await app.wecom.close()


async def serve(app: OneGrid) -> None:
    """Run the API, the scheduler and (when a token is set) the bot and its sender until stopped."""
    # log_config=None: uvicorn's loggers go through the one formatter of onegrid/logs.py. Their level is the
    # setting's too: uvicorn sets its own loggers' level, so "info" here logged every request at WARNING.
    server = uvicorn.Server(uvicorn.Config(app.api, host=app.settings.api_host, port=app.settings.api_port,
                                           log_level=app.settings.log_level.lower(), log_config=None))
    metrics_server = start_metrics_server(app)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(
        max_workers=store_threads(app.settings, app.engine), thread_name_prefix="store"))
    if app.sandbox is not None:
        app.sandbox.shutting_down = lambda: server.should_exit  # so live console streams let a stop through
        try:
            await start_background(app)
        except SandboxRefused as exc:
            log.error("%s", exc)
            await stop_background(app)
            app.engine.dispose()
            raise SystemExit(2) from None
        app.tasks.append(asyncio.create_task(app.sandbox.announce(lambda: server.started)))
    else:
        await start_background(app)
    log.info("API on http://%s:%s (docs at /docs, health at /health)", app.settings.api_host, app.settings.api_port)
    log.debug("%s objects built at start-up are out of the garbage collector's way", heap.settle())
    try:
        await server.serve()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        await stop_background(app)
        app.engine.dispose()


def store_threads(settings: Settings, engine: Engine) -> int:
    """How many threads run store work (asyncio.to_thread): the setting, else by the store's kind."""
    if settings.store_threads:
        return settings.store_threads
    return 2 if engine.dialect.name == "sqlite" else 4


def start_metrics_server(app: OneGrid) -> Any:
    """With ONEGRID_METRICS_BIND, /metrics on that (internal) address only, by prometheus-client's server."""
    if not app.settings.metrics_bind:
        return None
    host, _, port = app.settings.metrics_bind.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=app.api.state.metrics_registry)
    log.info("metrics on http://%s/metrics (not on the API port)", app.settings.metrics_bind)
    return server
