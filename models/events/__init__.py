"""Domain events: what happened, as plain dataclasses, with no text and no channel in them.

A service publishes events inside its transaction (`ctx.publish(session, event)`); the table wired in
onegrid/wiring.py says which channel renderers react, and they queue notification rows in that same
transaction. So a message exists exactly when the change that caused it committed.

Events carry ids and the few values a renderer needs to say what happened; renderers read the rest
(names, languages, chats) from the store. One module per area: work.py, supervision.py, resident.py,
staff.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every domain event."""
