"""Publishing domain events to whoever renders them, inside the publisher's transaction.

The table (event type -> renderers) is built in one place, onegrid/wiring.py; services only know
`ctx.publish(session, event)`. A renderer receives the open session, the context and the event, and
queues notification rows for its channel in that session: nothing is sent unless the change commits,
and nothing that commits is left unsent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from models.events import Event
from services.notify import urgency

if TYPE_CHECKING:
    from services.context import ServiceContext

Renderer = Callable[[Session, "ServiceContext", Any], None]
EventTable = Mapping[type[Event], Sequence[Renderer]]
# Event type -> the priority class (models.tables.Priority) of what its renderers queue, or a function of
# the event (an escalation's last step is more urgent than its first).
PriorityTable = Mapping[type[Event], int | Callable[[Any], int]]


def merge_tables(tables: Iterable[EventTable]) -> dict[type[Event], list[Renderer]]:
    """One table from several (one per channel or area); renderers of one event run in the given order."""
    merged: dict[type[Event], list[Renderer]] = {}
    for table in tables:
        for event_type, renderers in table.items():
            merged.setdefault(event_type, []).extend(renderers)
    return merged


class EventBus:
    def __init__(self, table: EventTable | None = None, priorities: PriorityTable | None = None) -> None:
        self._table: dict[type[Event], list[Renderer]] = merge_tables([table or {}])
        self._priorities = dict(priorities or {})

    def priority_of(self, event: Event) -> int | None:
        rule = self._priorities.get(type(event))
        return rule(event) if callable(rule) else rule

    def renderers(self, event_type: type[Event]) -> Sequence[Renderer]:
        return tuple(self._table.get(event_type, ()))

    def publish(self, session: Session, ctx: ServiceContext, event: Event) -> None:
        renderers = self._table.get(type(event), ())
        if not renderers:
            return
        priority = self.priority_of(event)
        if priority is None:
            for render in renderers:
                render(session, ctx, event)
            return
        with urgency(priority):
            for render in renderers:
                render(session, ctx, event)
