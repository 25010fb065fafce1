"""The WeCom channel's renderers, joined for onegrid/wiring.py (beside the Telegram ones)."""

from __future__ import annotations

from services.bus import EventTable, merge_tables
from wecom import renderers_case_actions, renderers_supervision, renderers_work

RENDERERS: EventTable = merge_tables([renderers_work.RENDERERS, renderers_supervision.RENDERERS,
                                        renderers_case_actions.RENDERERS])
