"""Helpers of the WeCom tests: staff on WeCom, waiting for what a member receives, the case's events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlmodel import select

from models.tables import Case, CaseEvent, Person
from onegrid.i18n import gettext_for
from services.db import transaction
from wecom.emulator import WecomMember
from wecom.emulator.server import Received

ZH = gettext_for("zh_CN")


def add_wecom_person(sessions: Any, now: Any, userid: str, *, roles: list[str], area_code: str,
                     department_code: str | None = None, name: str = "", on_duty: bool = True) -> int:
    """A staff member listed in the roster with their WeCom userid (no Telegram account), zh_CN."""
    with transaction(sessions) as s:
        person = Person(wecom_userid=userid, channel="wecom", display_name=name or userid, roles=roles,
                        area_code=area_code, department_code=department_code, on_duty=on_duty, locale="zh_CN",
                        created_at=now)
        s.add(person)
        s.flush()
        return person.id


async def until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll `condition` until it is truthy (WeCom messages arrive through the store and the sender)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def next_message(member: WecomMember, before: int, timeout: float = 15.0) -> Received:
    """The first message `member` receives after they had `before`."""
    await until(lambda: len(member.inbox) > before, timeout)
    return member.inbox[before]


async def act(member: WecomMember, action: Callable[[], Any]) -> Received:
    """Do `action` (a send or a press) and return the first message it brings."""
    before = len(member.inbox)
    response = await action()
    assert response.status_code == 200, response.text
    return await next_message(member, before)


def case_events(db: Any, case_id: int) -> list[tuple[str, str | None, str, str]]:
    """The case's audit trail as (action, from, to, actor role)."""
    with db.sessions() as s:
        rows = s.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)).all()
        return [(str(r.action), r.from_status and str(r.from_status), str(r.to_status), str(r.actor_role))
                for r in rows]


def case_status(db: Any, case_id: int) -> str:
    with db.sessions() as s:
        return str(s.get(Case, case_id).status)
