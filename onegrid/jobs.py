"""The scheduled jobs of a running OneGrid, and which of them run once in the whole deployment.

Several `onegrid serve` processes may share one PostgreSQL (docs/DEPLOY.md). Each process's
scheduler ticks every job, but a job that changes the store runs only in the process that takes
its lease (services/job_lease.py), once per period across all processes. The daily digest and the
spot-check rounds keep, besides, their own record of the day (`DigestRun`, `SpotCheckRound`), so
even two runs at the same minute send one digest and start one round.

Jobs about the process itself run in every process: the heartbeat (/health) and the grid-map
refresh, which rebuilds this process's in-memory index after an import made elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.areas import refresh_grid_map
from services.campaigns import tick as campaigns_tick
from services.context import ServiceContext
from services.digest import run_due as run_due_digest
from services.duty_roster import check_gaps as check_coverage_gaps
from services.escalation import sweep as escalation_sweep
from services.handover import release_due as release_due_handovers
from services.idempotency import purge_expired
from services.intake import apply_pending_clears
from services.job_lease import run_exclusive
from services.reporting import sweep as resident_sweep
from services.spot_checks import tick as spot_check_tick

if TYPE_CHECKING:
    from onegrid.app import OneGrid

log = logging.getLogger("onegrid")


def exclusive_job(app: OneGrid, name: str, seconds: float, fn: Callable[[ServiceContext], Any]) -> Callable[[], bool]:
    """The scheduler's callable for `fn`: runs it if this process takes the job's lease; True when it ran."""
    period = timedelta(seconds=seconds)

    def run() -> bool:
        try:
            ran, _ = run_exclusive(app.ctx, name, app.holder, lambda: fn(app.ctx), period=period)
            return ran
        except Exception:  # noqa: BLE001 - a job failing once must not stop the scheduler; the next tick retries
            log.exception("job %s failed", name)
            return False
    return run


def add_jobs(app: OneGrid) -> None:
    """Add every scheduled job of a running OneGrid to `app.scheduler`."""
    settings = app.settings

    def every(name: str, seconds: float, fn: Callable[[], Any]) -> None:
        app.scheduler.add_job(fn, "interval", seconds=seconds, id=name, coalesce=True, max_instances=1)

    def once(name: str, seconds: float, fn: Callable[[ServiceContext], Any]) -> None:
        every(name, seconds, exclusive_job(app, name, seconds, fn))

    every("heartbeat", 10, app.heartbeat)
    every("grid_map_refresh", settings.grid_map_refresh_s, lambda: _refresh_map(app))
    # Residents: expire quiet report drafts, purge photo originals and finished cases past retention.
    once("resident_sweep", 60, resident_sweep)
    # The case-store API: expired idempotency keys, machine clears that had to wait.
    once("idempotency_purge", 600, purge_expired)
    once("pending_clears", 30, apply_pending_clears)
    # Supervision: ONE job runs the escalation sweep for every case (services/escalation.py).
    once("escalation_sweep", settings.escalation_sweep_interval_s, escalation_sweep)
    # The digest and spot checks are due at city-local times; each minute asks whether something is due.
    if settings.digest_enabled:
        once("daily_digest", 60, run_due_digest)
    if settings.spot_check_enabled:
        once("spot_checks", 60, spot_check_tick)
    # Orders kept by a worker who went off duty go back to dispatch after the grace (services/handover.py).
    once("off_duty_handovers", 60, release_due_handovers)
    # A gap in an area's round-the-clock duty roster alerts the street supervisor (services/duty_roster.py).
    once("coverage_gaps", settings.coverage_check_interval_s, check_coverage_gaps)
    # Warnings not acknowledged are reminded; campaigns past their end time end (services/campaigns.py).
    once("warnings_campaigns", 60, campaigns_tick)


def _refresh_map(app: OneGrid) -> None:
    """Pick up grid imports made by another process (the CLI, another OneGrid) without a restart."""
    try:
        if refresh_grid_map(app.ctx.sessions, app.ctx.grid_map):
            log.info("grid map rebuilt after an import elsewhere (version %s)", app.ctx.grid_map.version)
    except Exception:  # noqa: BLE001 - the next tick retries; lookups keep the current index
        log.exception("grid map refresh failed")
