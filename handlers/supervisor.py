"""Supervisor handlers. Filled in by the supervisor issue."""

from __future__ import annotations

from aiogram import Router


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    return Router(name="supervisor")
