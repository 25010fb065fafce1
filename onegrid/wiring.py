"""The one place that says who reacts to which domain event (cosmicpython's EVENT_HANDLERS).

Services publish plain events (models/events/); each channel contributes renderers per event. Find the
code of any message by looking its event up here, then in the channel's renderer module.
"""

from __future__ import annotations

from bot.renderers import resident, staff, supervision, work
from services.bus import EventBus, Renderer, merge_tables
from models.events import Event


def event_table() -> dict[type[Event], list[Renderer]]:
    """Event type -> renderers, for every channel wired in this build (today: Telegram)."""
    return merge_tables([work.RENDERERS, supervision.RENDERERS, resident.RENDERERS, staff.RENDERERS])


def make_bus() -> EventBus:
    return EventBus(event_table())
