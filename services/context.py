"""What every service needs, handed in by the one factory (onegrid/app.py) instead of globals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from models.events import Event
from onegrid.clock import Clock
from onegrid.settings import Settings
from services.bus import EventBus

if TYPE_CHECKING:
    from services.gridmap import GridMap


@dataclass
class ServiceContext:
    sessions: sessionmaker[Session]
    clock: Clock
    grid_map: GridMap | None = None
    case_prefix: str = "SH"
    timezone: str = "Asia/Shanghai"
    # Called after a commit that queued notifications, so the sender wakes at once instead of polling.
    on_notifications: Callable[[], None] = field(default=lambda: None)
    # Called after a commit that registered cases (services/dispatcher.py). None: dispatch them inline,
    # right after that commit (tests, the CLI); `onegrid serve` wakes its dispatcher loop instead.
    on_registered: Callable[[], None] | None = None
    settings: Settings = field(default_factory=lambda: Settings(_env_file=None))
    # Event type -> channel renderers; the full table comes from onegrid/wiring.py.
    bus: EventBus = field(default_factory=EventBus)

    def publish(self, session: Session, event: Event) -> None:
        """Tell every renderer of `event`, inside the caller's transaction (`session`)."""
        self.bus.publish(session, self, event)
