"""Telegram renderers of the staff events (models/events/staff.py): text, keyboards and parse modes live here."""

from __future__ import annotations

from services.bus import EventTable

RENDERERS: EventTable = {}
