"""People: residents, grid workers, supervisors, known by their Telegram account."""

from __future__ import annotations

from sqlmodel import select

from models.tables import Person
from services.context import ServiceContext


def find_person_by_telegram_id(ctx: ServiceContext, *, telegram_user_id: int) -> Person | None:
    with ctx.sessions() as session:
        return session.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()
