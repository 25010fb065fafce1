"""Daily digest for supervisors (placeholder until implemented)."""

from __future__ import annotations

from services.context import ServiceContext


def run_due(ctx: ServiceContext) -> int:
    """Send today's digest if its time has come and it was not sent yet; returns recipients."""
    return 0
