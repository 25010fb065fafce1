"""Forum topics of supervisor groups: which topic of a group gets the escalation pings about an area.

What callers may rely on:
- `bind_topic` (a supervisor's `/topic` sent inside a forum topic) stores one `SupervisorTopic`
  per (group, area): pings to that group about cases in the area's subtree then carry the topic's
  `message_thread_id` (services/escalation.py looks for the nearest bound area of the case's grid).
- The area is the supervisor's own, or one in their subtree; anything else is refused.
- The group must be the supervisor group of the area or of one of its ancestors. When no area of
  that chain has a group yet, the group becomes the supervisor group of the supervisor's own area
  (how a city registers its groups; the result says so).
- `unbind_topic` (`/topic off`) removes the bindings of that topic in the supervisor's subtree.
Each is one transaction, publishes `TopicBound` / `TopicUnbound` (the channel answers in the topic),
and refuses with nothing written.
"""

from __future__ import annotations

from services.names import localized
from dataclasses import dataclass

from sqlmodel import select

from models.events.supervision import TopicBound, TopicUnbound
from models.lifecycle import Role
from models.supervision import SupervisorTopic
from models.tables import Area, Person
from services import dispatch, reference
from services.areas import area_chain, get_area
from services.context import ServiceContext
from services.db import transaction
from services.supervision_access import NotASupervisor, OutsideYourArea


class TopicError(Exception):
    """A refusal the supervisor can be told about; nothing was written."""


class NotInATopic(TopicError):
    """The command was not sent inside a forum topic of a group."""


class UnknownArea(TopicError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotTheSupervisorGroup(TopicError):
    """The group is not the supervisor group of the area's chain (another group is)."""

    def __init__(self, area_name: str) -> None:
        super().__init__(area_name)
        self.area_name = area_name


@dataclass(frozen=True)
class TopicBinding:
    area_code: str
    area_name: str  # in the supervisor's language
    claimed_for: str | None  # the supervisor's own area's name, when this group just became its group


def _supervisor(session, supervisor_id: int) -> Person:  # noqa: ANN001
    person = session.get(Person, supervisor_id)
    if person is None or not person.has_role(Role.SUPERVISOR) or not person.active or person.area_code is None:
        raise NotASupervisor(str(supervisor_id))
    return person


def _topic_of(chat_id: int, message_thread_id: int | None) -> int:
    if chat_id >= 0 or not message_thread_id:
        raise NotInATopic()
    return message_thread_id


def bind_topic(ctx: ServiceContext, *, supervisor_id: int, chat_id: int, message_thread_id: int | None,
               area_code: str | None = None) -> TopicBinding:
    """Send the pings about `area_code` (default: the supervisor's area) in this group to this topic."""
    thread_id = _topic_of(chat_id, message_thread_id)
    with transaction(ctx.sessions) as session:
        supervisor = _supervisor(session, supervisor_id)
        code = (area_code or supervisor.area_code).strip()
        area = get_area(session, code)
        if area is None:
            raise UnknownArea(code)
        if not dispatch.supervises(session, supervisor, area.code):
            raise OutsideYourArea(area.code)
        chain = area_chain(session, area.code)
        groups = [a.supervisor_chat_id for a in chain if a.supervisor_chat_id is not None]
        claimed_for = claimed_code = None
        if not groups:
            own = get_area(session, supervisor.area_code)
            own.supervisor_chat_id = chat_id
            session.add(own)
            reference.bump(session, ctx.clock.now())
            claimed_for, claimed_code = localized(own, supervisor.locale, own.code), own.code
        elif chat_id not in groups:
            raise NotTheSupervisorGroup(localized(area, supervisor.locale, area.code))
        row = session.exec(select(SupervisorTopic).where(SupervisorTopic.chat_id == chat_id,
                                                         SupervisorTopic.area_code == area.code)).first()
        if row is None:
            row = SupervisorTopic(chat_id=chat_id, area_code=area.code, message_thread_id=message_thread_id)
        row.message_thread_id = message_thread_id
        session.add(row)
        ctx.publish(session, TopicBound(supervisor_id=supervisor.id, chat_id=chat_id, message_thread_id=thread_id,
                                        area_code=area.code, claimed_area_code=claimed_code))
        return TopicBinding(area.code, localized(area, supervisor.locale, area.code), claimed_for)


def unbind_topic(ctx: ServiceContext, *, supervisor_id: int, chat_id: int, message_thread_id: int | None,
                 area_code: str | None = None) -> list[str]:
    """Stop sending pings to this topic: every area of the supervisor's subtree bound to it (or just
    `area_code`). Returns the names of the areas unbound (empty: none was)."""
    thread_id = _topic_of(chat_id, message_thread_id)
    with transaction(ctx.sessions) as session:
        supervisor = _supervisor(session, supervisor_id)
        if area_code and not dispatch.supervises(session, supervisor, area_code.strip()):
            raise OutsideYourArea(area_code)
        rows = session.exec(select(SupervisorTopic).where(
            SupervisorTopic.chat_id == chat_id, SupervisorTopic.message_thread_id == message_thread_id)).all()
        names, codes = [], []
        for row in rows:
            if (area_code and row.area_code != area_code.strip()) or \
                    not dispatch.supervises(session, supervisor, row.area_code):
                continue
            area = session.exec(select(Area).where(Area.code == row.area_code)).first()
            names.append(localized(area, supervisor.locale, row.area_code))
            codes.append(row.area_code)
            session.delete(row)
        ctx.publish(session, TopicUnbound(supervisor_id=supervisor.id, chat_id=chat_id, message_thread_id=thread_id,
                                          area_codes=tuple(codes)))
        return names
