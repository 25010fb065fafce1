"""The WeCom channel's renderers, joined for onegrid/wiring.py (beside the Telegram ones).

Each is wrapped in `wecom.drill.labelled`: what it queues about a drill case carries the drill label.
"""

from __future__ import annotations

from services.bus import EventTable, merge_tables
from wecom import renderers_alarms, renderers_case_actions, renderers_field, renderers_supervision, renderers_work
from wecom.drill import labelled

RENDERERS: EventTable = {
    event: [labelled(render) for render in renderers]
    for event, renderers in merge_tables([renderers_work.RENDERERS, renderers_supervision.RENDERERS,
                                          renderers_case_actions.RENDERERS, renderers_alarms.RENDERERS,
                                          renderers_field.RENDERERS]).items()}
