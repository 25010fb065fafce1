"""The sandbox's demo people and seeding them into the store.

What callers may rely on: `seed_demo_people` is idempotent: a demo person already in the store
(matched by Telegram id) is left exactly as it is, so changes made while trying the demo (/duty,
/lang) survive restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.lifecycle import Role
from models.tables import Area, Person
from services import reference
from services.people import choose_channel, find_person_by_telegram_id
from services.context import ServiceContext
from services.db import transaction

DEMO_STREET = "SH-CN-01"  # 江苏路街道, Changning


@dataclass(frozen=True)
class DemoPerson:
    """A person the sandbox seeds; `key` names them in the console and in tests."""

    key: str
    telegram_user_id: int
    name: str
    role: Role
    locale: str
    area_code: str | None = None
    department_code: str | None = None
    phone: str = ""

    @property
    def language_code(self) -> str:
        """The Telegram client language that goes with `locale`."""
        return "zh-hans" if self.locale == "zh_CN" else "en"


# A resident, a worker in each of two grids of 江苏路街道 (department of exposed_garbage and the
# other greening & city appearance categories) and the street's supervisor, in both languages.
DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("resident", 9_000_001, "李华", Role.RESIDENT, "zh_CN", phone="+8613800000001"),
    DemoPerson("worker", 9_000_002, "王建国", Role.WORKER, "zh_CN", f"{DEMO_STREET}-001",
               "greening_appearance", "+8613800000002"),
    DemoPerson("worker2", 9_000_003, "Chen Jie", Role.WORKER, "en", f"{DEMO_STREET}-002",
               "greening_appearance", "+8613800000003"),
    DemoPerson("supervisor", 9_000_004, "Zhang Min", Role.SUPERVISOR, "en", DEMO_STREET,
               phone="+8613800000004"),
)


def seed_demo_people(ctx: ServiceContext, people: tuple[DemoPerson, ...] = DEMO_PEOPLE) -> list[str]:
    """Create the demo people missing from the store; returns the keys of those created.

    The street's supervisor chat is set to the demo supervisor when the street has none, so
    whatever the bot sends to the street's supervisor reaches that persona.
    """
    created: list[str] = []
    now = ctx.clock.now()
    for demo in people:
        try:
            with transaction(ctx.sessions) as session:
                if _person(session, demo.telegram_user_id) is not None:
                    continue
                session.add(Person(
                    telegram_user_id=demo.telegram_user_id,
                    display_name=demo.name,
                    phone=demo.phone or None,
                    roles=[demo.role.value],
                    area_code=demo.area_code,
                    department_code=demo.department_code,
                    locale=demo.locale,
                    locale_chosen=True,
                    on_duty=demo.role is Role.WORKER,
                    created_at=now,
                ))
            created.append(demo.key)
        except IntegrityError:  # another process seeded the same person first: that is fine
            continue
    supervisor = next((p for p in people if p.role is Role.SUPERVISOR), None)
    if supervisor is not None and supervisor.area_code:
        with transaction(ctx.sessions) as session:
            session.execute(
                sa.update(Area)
                .where(Area.code == supervisor.area_code, Area.supervisor_chat_id.is_(None))
                .values(supervisor_chat_id=supervisor.telegram_user_id)
            )
            reference.bump(session)
    return created


def back_to_telegram(ctx: ServiceContext, people: tuple[DemoPerson, ...] = DEMO_PEOPLE) -> list[str]:
    """Demo people left on WeCom by an earlier run with ONEGRID_SANDBOX_WECOM=on are notified on Telegram
    again (this run has no WeCom emulator, so nothing sent there would reach their pane); their keys."""
    moved = []
    for demo in people:
        person = find_person_by_telegram_id(ctx, telegram_user_id=demo.telegram_user_id)
        if person is not None and person.channel == "wecom":
            choose_channel(ctx, person_id=person.id, channel="telegram")
            moved.append(demo.key)
    return moved


def _person(session: Session, telegram_user_id: int) -> Person | None:
    return session.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()
