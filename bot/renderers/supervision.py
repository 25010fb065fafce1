"""Telegram renderers of the supervision events (models/events/supervision.py): text, keyboards and parse modes live here."""

from __future__ import annotations

from services.bus import EventTable

RENDERERS: EventTable = {}
