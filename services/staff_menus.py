"""Per-chat command menus of staff: what a worker or supervisor sees behind the "/" button.

What callers may rely on:
- The menu is one `setMyCommands` call with `BotCommandScopeChat` for the person's private chat,
  written to the notification queue, so Telegram faults are retried like any message; the
  descriptions are in the person's language (a chat-scoped menu serves every client language).
- Workers get /tasks /duty /extend /help; supervisors /verify /stats /topic /workers /help; a
  person with both roles gets both lists, without repeats.
- `queue_menu_for` is called when an invitation binds a person; `queue_all` at startup (it skips
  people whose menu is still waiting in the queue, so restarts do not pile up rows).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Role
from models.tables import Notification, NotificationStatus, Person
from onegrid.i18n import N_, gettext_for
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue

METHOD = "setMyCommands"

WORKER_COMMANDS = (
    ("tasks", N_("your open work orders, overdue first")),
    ("duty", N_("go on or off duty")),
    ("extend", N_("ask for more time on a case")),
)
SUPERVISOR_COMMANDS = (
    ("verify", N_("cases awaiting your verification")),
    ("stats", N_("how your area is doing")),
    ("topic", N_("send an area's pings to this forum topic")),
    ("workers", N_("the workers of your area")),
)
HELP = ("help", N_("what I can do"))


def menu_of(person: Person) -> list[dict[str, str]]:
    """The commands (Bot API `BotCommand` dicts) of the person's staff roles, in their language; [] for none."""
    _ = gettext_for(person.locale)
    entries: list[tuple[str, str]] = []
    if person.has_role(Role.WORKER):
        entries += WORKER_COMMANDS
    if person.has_role(Role.SUPERVISOR):
        entries += SUPERVISOR_COMMANDS
    if not entries:
        return []
    entries.append(HELP)
    seen: set[str] = set()
    return [{"command": name, "description": _(description)} for name, description in entries
            if not (name in seen or seen.add(name))]


def queue_menu(session: Session, ctx: ServiceContext, person: Person) -> Notification | None:
    """Queue the person's menu in `session`; None when they have no Telegram chat or no staff role."""
    commands = menu_of(person)
    if person.telegram_user_id is None or not commands or not person.active:
        return None
    payload: dict[str, Any] = {"commands": commands, "scope": {"type": "chat", "chat_id": person.telegram_user_id}}
    return enqueue(session, chat_id=person.telegram_user_id, method=METHOD, payload=payload, now=ctx.clock.now(),
                   person_id=person.id)


def queue_menu_for(ctx: ServiceContext, *, person_id: int) -> bool:
    """Queue one person's menu in its own transaction; whether a menu was queued."""
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        queued = person is not None and queue_menu(session, ctx, person) is not None
    if queued:
        ctx.on_notifications()
    return queued


def queue_all(ctx: ServiceContext) -> int:
    """Queue the menu of every active staff member with a chat (at startup); returns how many were queued."""
    count = 0
    with transaction(ctx.sessions) as session:
        waiting = set(session.exec(select(Notification.person_id).where(
            Notification.method == METHOD,
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))).all())
        roles = sa.cast(Person.roles, sa.String)  # a JSON list; a text match keeps residents out of the scan
        people = session.exec(select(Person).where(
            Person.active.is_(True), Person.telegram_user_id.is_not(None), Person.deleted_at.is_(None),
            sa.or_(roles.like(f'%"{Role.WORKER.value}"%'), roles.like(f'%"{Role.SUPERVISOR.value}"%')))
            .order_by(Person.id)).all()
        for person in people:
            if person.id not in waiting and queue_menu(session, ctx, person) is not None:
                count += 1
    if count:
        ctx.on_notifications()
    return count
