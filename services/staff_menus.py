"""Per-chat command menus of staff: which commands a worker or supervisor sees behind the "/" button.

What callers may rely on:
- Workers get tasks, duty, extend, help; supervisors verify, stats, topic, workers, help; a person
  with both roles gets both lists, without repeats (`menu_of`). The words and the Telegram call
  (one chat-scoped `setMyCommands`, queued so faults are retried) are the channel's:
  bot/renderers/staff_menus.py renders `StaffMenuChanged`.
- `queue_menu_for` is called when an invitation binds a person; `queue_all` at startup (it skips
  people whose menu is still waiting in the notification queue, so restarts do not pile up rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.staff import StaffMenuChanged
from models.lifecycle import Role
from models.tables import Notification, NotificationStatus, Person
from services.context import ServiceContext
from services.db import transaction

WORKER_MENU = ("tasks", "duty", "extend")
SUPERVISOR_MENU = ("verify", "stats", "topic", "workers")
HELP = "help"
# The queue's name for a menu row (what the Telegram renderer queues): how a restart sees one still waiting.
MENU_ROW = "setMyCommands"


def menu_of(person: Person) -> tuple[str, ...]:
    """The command names of the person's staff roles, in menu order; () for none."""
    names: list[str] = []
    if person.has_role(Role.WORKER):
        names += WORKER_MENU
    if person.has_role(Role.SUPERVISOR):
        names += [name for name in SUPERVISOR_MENU if name not in names]
    return (*names, HELP) if names else ()


def queue_menu(session: Session, ctx: ServiceContext, person: Person) -> bool:
    """Publish the person's menu in `session`; False when they have no Telegram chat, no staff role or left."""
    commands = menu_of(person)
    if person.telegram_user_id is None or not commands or not person.active:
        return False
    ctx.publish(session, StaffMenuChanged(person_id=person.id, commands=commands))
    return True


def queue_menu_for(ctx: ServiceContext, *, person_id: int) -> bool:
    """Publish one person's menu in its own transaction; whether a menu was published."""
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        queued = person is not None and queue_menu(session, ctx, person)
    if queued:
        ctx.on_notifications()
    return queued


def queue_all(ctx: ServiceContext) -> int:
    """Publish the menu of every active staff member with a chat (at startup); returns how many."""
    count = 0
    with transaction(ctx.sessions) as session:
        waiting = set(session.exec(select(Notification.person_id).where(
            Notification.method == MENU_ROW,
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING]))).all())
        roles = sa.cast(Person.roles, sa.String)  # a JSON list; a text match keeps residents out of the scan
        people = session.exec(select(Person).where(
            Person.active.is_(True), Person.telegram_user_id.is_not(None), Person.deleted_at.is_(None),
            sa.or_(roles.like(f'%"{Role.WORKER.value}"%'), roles.like(f'%"{Role.SUPERVISOR.value}"%')))
            .order_by(Person.id)).all()
        for person in people:
            if person.id not in waiting and queue_menu(session, ctx, person):
                count += 1
    if count:
        ctx.on_notifications()
    return count
