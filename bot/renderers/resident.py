"""Telegram renderers of the resident events (models/events/resident.py): text, keyboards and parse modes live here."""

from __future__ import annotations

from services.bus import EventTable

RENDERERS: EventTable = {}
