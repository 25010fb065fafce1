"""People: residents, grid workers, supervisors, known by their Telegram account or their WeCom userid."""

from __future__ import annotations

from sqlmodel import select

from models.tables import Person
from services.context import ServiceContext
from services.db import transaction


def find_person_by_telegram_id(ctx: ServiceContext, *, telegram_user_id: int) -> Person | None:
    with ctx.sessions() as session:
        return session.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()


class RosterError(ValueError):
    """The roster entry cannot be applied (unknown person, or the userid belongs to someone else)."""


def find_person_by_wecom_userid(ctx: ServiceContext, *, wecom_userid: str) -> Person | None:
    with ctx.sessions() as session:
        return session.exec(select(Person).where(Person.wecom_userid == wecom_userid)).first()


def bind_wecom_userid(ctx: ServiceContext, *, person_id: int, wecom_userid: str, use_it: bool = True) -> Person:
    """The roster lists this person's WeCom / 政务微信 userid: bind it (and, with `use_it`, send their
    notifications there from now on). One person may keep a Telegram account beside it."""
    userid = wecom_userid.strip()
    if not userid or len(userid) > 64:
        raise RosterError("a WeCom userid is 1-64 characters")
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise RosterError(f"no person {person_id}")
        holder = session.exec(select(Person).where(Person.wecom_userid == userid)).first()
        if holder is not None and holder.id != person.id:
            raise RosterError(f"WeCom userid {userid!r} is already bound to person {holder.id}")
        person.wecom_userid = userid
        if use_it:
            person.channel = "wecom"
        session.add(person)
        session.flush()
        session.expunge(person)
        return person


def choose_channel(ctx: ServiceContext, *, person_id: int, channel: str) -> None:
    """Send this person's notifications to `channel` ("telegram" or "wecom"), an account they have."""
    with transaction(ctx.sessions) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise RosterError(f"no person {person_id}")
        if channel == "wecom" and not person.wecom_userid or channel == "telegram" and person.telegram_user_id is None:
            raise RosterError(f"person {person_id} has no {channel} account")
        if channel not in ("wecom", "telegram"):
            raise RosterError("channel is telegram or wecom")
        person.channel = channel
        session.add(person)
