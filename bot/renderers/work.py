"""Telegram renderers of the work events (models/events/work.py): text, keyboards and parse modes live here."""

from __future__ import annotations

from services.bus import EventTable

RENDERERS: EventTable = {}
