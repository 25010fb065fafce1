"""Telegram renderers of the staff events (models/events/staff.py): text, keyboards and parse modes live here.

One module per topic (staff_spot_checks, staff_digest, staff_menus, staff_accounts); this table joins them
for onegrid/wiring.py.
"""

from __future__ import annotations

from bot.renderers import staff_accounts, staff_digest, staff_menus, staff_spot_checks
from services.bus import EventTable, merge_tables

RENDERERS: EventTable = merge_tables([staff_spot_checks.RENDERERS, staff_digest.RENDERERS, staff_menus.RENDERERS,
                                      staff_accounts.RENDERERS])
