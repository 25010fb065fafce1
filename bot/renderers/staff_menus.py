"""Telegram renderer of staff command menus: the descriptions (in the person's language) and the
chat-scoped `setMyCommands` call. /help (handlers/common.py) lists the same commands in the same words."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.events.staff import StaffMenuChanged
from models.tables import Person
from onegrid.i18n import N_, gettext_for
from services.bus import EventTable
from services.context import ServiceContext
from services.notify import enqueue

WORKER_COMMANDS = (
    ("tasks", N_("your open work orders, overdue first")),
    ("patrol", N_("report a problem you found on patrol")),
    ("duty", N_("go on or off duty")),
    ("extend", N_("ask for more time on a case")),
)
SUPERVISOR_COMMANDS = (
    ("verify", N_("cases awaiting your verification")),
    ("stats", N_("how your area is doing")),
    ("topic", N_("send an area's pings to this forum topic")),
    ("workers", N_("the workers of your area")),
    ("case", N_("a case's card, to cancel it or merge a duplicate")),
)
HELP = ("help", N_("what I can do"))
DESCRIPTIONS = dict((*WORKER_COMMANDS, *SUPERVISOR_COMMANDS, HELP))


def bot_commands(commands: tuple[str, ...], locale: str) -> list[dict[str, str]]:
    """Bot API `BotCommand` dicts for the command names, described in `locale`."""
    _ = gettext_for(locale)
    return [{"command": name, "description": _(DESCRIPTIONS[name])} for name in commands]


def staff_menu_changed(session: Session, ctx: ServiceContext, event: StaffMenuChanged) -> None:
    person = session.get(Person, event.person_id)
    if person is None or person.telegram_user_id is None:
        return
    payload: dict[str, Any] = {"commands": bot_commands(event.commands, person.locale),
                               "scope": {"type": "chat", "chat_id": person.telegram_user_id}}
    enqueue(session, chat_id=person.telegram_user_id, method="setMyCommands", payload=payload, now=ctx.clock.now(),
            person_id=person.id)


RENDERERS: EventTable = {StaffMenuChanged: [staff_menu_changed]}
