"""Per-chat command menus of staff: which commands a worker or supervisor sees behind the "/" button.

What callers may rely on:
- Workers get tasks, patrol, duty, extend, help; supervisors verify, stats, topic, workers, help; a person
  with both roles gets both lists, without repeats (`menu_of`). The words and the Telegram call
  (one chat-scoped `setMyCommands`, queued so faults are retried) are the channel's:
  bot/renderers/staff_menus.py renders `StaffMenuChanged`.
- A menu is queued only when it changed: `Person.menu_digest` remembers the commands and language
  last queued, so binding, a role change or a language change queue one, and a restart or deploy
  queues none for anyone whose menu is unchanged (`queue_all` at startup costs one scan, no rows).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.staff import StaffMenuChanged
from models.lifecycle import Role
from models.tables import Person
from services.context import ServiceContext
from services.db import transaction

WORKER_MENU = ("tasks", "patrol", "duty", "extend")
SUPERVISOR_MENU = ("verify", "stats", "topic", "workers", "case")
HELP = "help"


def menu_of(person: Person) -> tuple[str, ...]:
    """The command names of the person's staff roles, in menu order; () for none."""
    names: list[str] = []
    if person.has_role(Role.WORKER):
        names += WORKER_MENU
    if person.has_role(Role.SUPERVISOR):
        names += [name for name in SUPERVISOR_MENU if name not in names]
    return (*names, HELP) if names else ()


def menu_digest(commands: tuple[str, ...], locale: str) -> str:
    """What a menu looks like to its reader: its commands and their language."""
    return hashlib.sha256(f"{locale}|{','.join(commands)}".encode()).hexdigest()[:32]


def queue_menu(session: Session, ctx: ServiceContext, person: Person) -> bool:
    """Publish the person's menu in `session` if it changed since last queued; whether it was published.

    False too when they have no Telegram chat, no staff role, or left.
    """
    commands = menu_of(person)
    if person.telegram_user_id is None or not commands or not person.active:
        return False
    digest = menu_digest(commands, person.locale)
    if person.menu_digest == digest:
        return False
    person.menu_digest = digest
    session.add(person)
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


CHUNK = 200  # people per transaction: a first start with thousands of staff must not hold the store


def queue_all(ctx: ServiceContext) -> int:
    """Publish the menu of every active staff member whose menu changed (at startup); returns how many.

    Works through the staff a chunk at a time, each in its own short transaction, so cases registered
    meanwhile do not wait for thousands of menus.
    """
    count, after = 0, 0
    roles = sa.cast(Person.roles, sa.String)  # a JSON list; a text match keeps residents out of the scan
    while True:
        with transaction(ctx.sessions) as session:
            people = session.exec(select(Person).where(
                Person.id > after, Person.active.is_(True), Person.telegram_user_id.is_not(None),
                Person.deleted_at.is_(None),
                sa.or_(roles.like(f'%"{Role.WORKER.value}"%'), roles.like(f'%"{Role.SUPERVISOR.value}"%')))
                .order_by(Person.id).limit(CHUNK)).all()
            queued = sum(1 for person in people if queue_menu(session, ctx, person))
        count += queued
        if queued:
            ctx.on_notifications()
        if len(people) < CHUNK:
            return count
        after = people[-1].id
