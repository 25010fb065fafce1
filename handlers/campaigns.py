"""Warnings and campaigns in chat.

Workers: Acknowledge under a warning; ok / problem per checklist item of a campaign place; then a photo
and a location, claimed by this router (before the worker router, after spot checks) only while the
worker is checking a place and has no conversation of their own (no FSM state).
Supervisors: /warn [drill] [AREA] LEVEL TEXT, /warnings (who has not acknowledged), /warnend ID,
/campaigns (progress), /campaignend ID.

Each handler parses the update and calls one service; what the change says is queued by the renderers
(bot/renderers/warnings.py, bot/renderers/campaigns.py) in the service's transaction. Refusals and
read-only answers are sent here.
"""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, Filter, StateFilter
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.campaign_ui import InspectCb, WarnAckCb
from bot.renderers.drill import drill_prefix
from bot.renderers.warnings import LEVELS
from handlers.worker_common import HasRole, reply
from models.campaigns import WarningLevel, parse_level
from models.lifecycle import Role
from models.tables import Person
from services import campaign_answers, campaigns, warnings
from services.campaign_answers import AnswerOutcome
from services.context import ServiceContext
from services.photos import MAX_BYTES
from services.work_rules import LocationFix

DRILL_WORDS = ("drill", "演练")


class IsCheckingPlace(Filter):
    """Passes for a worker checking a campaign place."""

    async def __call__(self, message: Message, ctx: ServiceContext, person: Person | None = None) -> bool:
        if person is None or not person.has_role(Role.WORKER):
            return False
        return await asyncio.to_thread(campaign_answers.checking_place_id, ctx, worker_id=person.id) is not None


def build_router() -> Router:
    router = Router(name="campaigns")
    worker, supervisor = HasRole(Role.WORKER), HasRole(Role.SUPERVISOR)
    router.callback_query.register(acknowledge, WarnAckCb.filter(), worker)
    router.callback_query.register(answer_item, InspectCb.filter(), worker)
    router.message.register(answer_photo, StateFilter(None), F.photo | F.document, IsCheckingPlace())
    router.message.register(answer_location, StateFilter(None), F.location, IsCheckingPlace())
    router.message.register(warn, Command("warn"), supervisor)
    router.message.register(list_warnings, Command("warnings"), supervisor)
    router.message.register(end_warning, Command("warnend"), supervisor)
    router.message.register(list_campaigns, Command("campaigns"), supervisor)
    router.message.register(end_campaign, Command("campaignend"), supervisor)
    return router


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# -- workers ----------------------------------------------------------------------------------------------


async def acknowledge(query: CallbackQuery, callback_data: WarnAckCb, ctx: ServiceContext, person: Person) -> None:
    message_id = query.message.message_id if query.message else None
    try:
        await asyncio.to_thread(warnings.acknowledge, ctx, recipient_id=callback_data.recipient_id,
                                worker_id=person.id, message_id=message_id)
    except warnings.NotYourWarning:
        await query.answer(_("This warning was not sent to you."), show_alert=True)
        return
    await query.answer(_("Acknowledged."))


ITEM_REFUSALS = {
    AnswerOutcome.TAKEN: lambda: _("Another worker is already checking this place."),
    AnswerOutcome.DONE_ALREADY: lambda: _("This place has already been checked."),
    AnswerOutcome.ENDED: lambda: _("This campaign has ended."),
    AnswerOutcome.NOT_YOURS: lambda: _("This place is not in your grid."),
}


async def answer_item(query: CallbackQuery, callback_data: InspectCb, ctx: ServiceContext, person: Person) -> None:
    outcome = await asyncio.to_thread(
        campaign_answers.answer_item, ctx, worker_id=person.id, place_id=callback_data.place_id,
        index=callback_data.index, ok=bool(callback_data.ok),
        message_id=query.message.message_id if query.message else None)
    refusal = ITEM_REFUSALS.get(outcome)
    if refusal is not None:
        await query.answer(refusal(), show_alert=True)
    else:
        await query.answer(_("Noted."))


async def answer_photo(message: Message, bot: Bot, ctx: ServiceContext, person: Person) -> None:
    forwarded = message.forward_origin is not None
    data = None
    if message.photo and not forwarded:
        size = message.photo[-1]
        if size.file_size is None or size.file_size <= MAX_BYTES:
            try:
                data = (await bot.download(size.file_id)).read()
            except TelegramBadRequest:  # Telegram refuses downloads over 20 MB
                data = b""
    outcome = await asyncio.to_thread(campaign_answers.record_photo, ctx, worker_id=person.id, data=data,
                                      message_date=_aware(message.date), forwarded=forwarded,
                                      as_file=message.document is not None)
    if outcome is AnswerOutcome.NO_PLACE:
        await reply(ctx, message, _("You are not checking a campaign place any more."), person)


async def answer_location(message: Message, ctx: ServiceContext, person: Person) -> None:
    location = message.location
    fix = LocationFix(lat=location.latitude, lon=location.longitude, sent_at=_aware(message.date),
                      accuracy_m=location.horizontal_accuracy, live_period=location.live_period,
                      forwarded=message.forward_origin is not None, venue=message.venue is not None,
                      via_bot=message.via_bot is not None, message_id=message.message_id)
    outcome = await asyncio.to_thread(campaign_answers.record_location, ctx, worker_id=person.id, fix=fix)
    if outcome is AnswerOutcome.NO_PLACE:
        await reply(ctx, message, _("You are not checking a campaign place any more."), person)


# -- supervisors ------------------------------------------------------------------------------------------


def _usage() -> str:
    return _("Usage: /warn [drill] [AREA] LEVEL TEXT\nLEVEL is blue, yellow, orange or red (蓝, 黄, 橙, 红); "
             "AREA defaults to your own area. Example: /warn orange Typhoon tonight: check the underpasses.")


def _pop(rest: str) -> tuple[str, str]:
    parts = rest.split(maxsplit=1)
    return (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")


def parse_warn(args: str, own_area: str | None) -> tuple[bool, str | None, WarningLevel | None, str]:
    """`[drill] [AREA] LEVEL TEXT` → (drill, area, level, text); level None when it is missing or unknown."""
    word, rest = _pop(args)
    drill = word.lower() in DRILL_WORDS
    if drill:
        word, rest = _pop(rest)
    area = own_area
    if parse_level(word) is None and rest:
        area = word
        word, rest = _pop(rest)
    return drill, area, parse_level(word), rest.strip()


async def warn(message: Message, command: CommandObject, ctx: ServiceContext, person: Person) -> None:
    drill, area, level, text = parse_warn(command.args or "", person.area_code)
    if level is None or not text or not area:
        await reply(ctx, message, _usage(), person)
        return
    try:
        await asyncio.to_thread(warnings.issue_warning, ctx, area_code=area, level=level, text=text, drill=drill,
                                issued_by_id=person.id)
    except warnings.UnknownArea:
        await reply(ctx, message, _("There is no area {code}.").format(code=html.escape(area)), person)
    except warnings.OutsideYourArea:
        await reply(ctx, message, _("Area {code} is not in your area.").format(code=html.escape(area)), person)
    except warnings.EmptyText:
        await reply(ctx, message, _usage(), person)


def _level(level: WarningLevel) -> str:
    return _(LEVELS[level])


async def list_warnings(message: Message, ctx: ServiceContext, person: Person) -> None:
    states = await asyncio.to_thread(warnings.active_warnings, ctx, supervisor_id=person.id)
    if not states:
        await reply(ctx, message, _("No active warnings in your area."), person)
        return
    lines = []
    for state in states:
        line = drill_prefix(_, state.drill) + _("#{id} {level} · {area}: {acknowledged} of {total} acknowledged").format(
            id=state.id, level=_level(state.level), area=html.escape(state.area_code),
            acknowledged=state.acknowledged, total=state.total)
        if state.pending_names:
            line += "\n" + _("Not acknowledged yet: {names}").format(
                names=", ".join(html.escape(n) for n in state.pending_names))
        lines.append(line)
    await reply(ctx, message, "\n\n".join(lines) + "\n\n" + _("End one with /warnend ID."), person)


def _id(command: CommandObject) -> int | None:
    args = (command.args or "").strip().lstrip("#")
    return int(args) if args.isdigit() else None


async def end_warning(message: Message, command: CommandObject, ctx: ServiceContext, person: Person) -> None:
    warning_id = _id(command)
    if warning_id is None:
        await reply(ctx, message, _("Usage: /warnend ID (the number /warnings shows)."), person)
        return
    try:
        await asyncio.to_thread(warnings.end_warning, ctx, warning_id=warning_id, supervisor_id=person.id)
    except (warnings.WarningNotFound, warnings.OutsideYourArea):
        await reply(ctx, message, _("There is no warning #{id} in your area.").format(id=warning_id), person)
        return
    await reply(ctx, message, _("Warning #{id} ended: no more reminders.").format(id=warning_id), person)


async def list_campaigns(message: Message, ctx: ServiceContext, person: Person) -> None:
    found = await asyncio.to_thread(campaigns.open_campaigns, ctx, supervisor_id=person.id)
    if not found:
        await reply(ctx, message, _("No open campaigns in your area."), person)
        return
    lines = [drill_prefix(_, c.drill) + _("#{id} «{name}»: {checked} of {total} checked, {problems} with problems").format(
        id=c.id, name=html.escape(c.name), checked=c.progress.checked, total=c.progress.total,
        problems=c.progress.problems) for c in found]
    await reply(ctx, message, "\n".join(lines) + "\n\n" + _("End one with /campaignend ID."), person)


async def end_campaign(message: Message, command: CommandObject, ctx: ServiceContext, person: Person) -> None:
    campaign_id = _id(command)
    if campaign_id is None:
        await reply(ctx, message, _("Usage: /campaignend ID (the number /campaigns shows)."), person)
        return
    try:
        await asyncio.to_thread(campaigns.end_campaign, ctx, campaign_id=campaign_id, supervisor_id=person.id)
    except campaigns.CampaignError:
        await reply(ctx, message, _("There is no campaign #{id} in your area.").format(id=campaign_id), person)
