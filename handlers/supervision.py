"""Supervision handlers: deadlines, escalation pings, /verify, /stats. Filled in by the supervisors issue."""

from __future__ import annotations

from aiogram import Router


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    return Router(name="supervision")
