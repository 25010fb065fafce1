"""Spot checks of silent grids (placeholder until implemented)."""

from __future__ import annotations

from services.context import ServiceContext


def tick(ctx: ServiceContext) -> int:
    """Start due spot-check rounds and finish overdue checks; returns how many changed."""
    return 0
