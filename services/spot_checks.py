"""Spot checks of silent grids (不定时抽查): is anybody out there where no case has come from lately?

What callers may rely on:
- `tick(ctx)` is the one scheduled job (once a minute). On a working day it plans the day once:
  `spot_check_rounds_per_day` distinct minutes drawn within the day's working hours (city
  timezone, the default hours of the calendar), each early enough that the answer window of
  `spot_check_answer_minutes` ends inside the same working interval. The plan is stored
  (`SpotCheckRound`, primary key day + round), so a restart or a second process finds it instead
  of drawing another; each round is started by a conditional update of its row, so exactly once.
  A round whose time passed while OneGrid was down starts at the next tick in working time of the
  same day (late, once); rounds of a day that is over are not started any more. A public holiday
  or a weekend has no plan at all.
- Randomness is reproducible: with `spot_check_seed` set, the day's seed is derived from it and
  the day, so the same seed gives the same times and the same sample on the same store; without
  it, each day gets a fresh random seed, kept on the round rows and on every check it made.
- A round draws up to `spot_check_sample` grids from the silent ones: grids that have at least one
  active worker (grid staff), no case created in the last `spot_check_silent_days` days, and no
  spot check still open; the draw is `random.Random(seed)` over the sorted codes. Grids with no
  worker at all are never drawn: that is a staffing gap for the roster, not silence to check, and
  drawing them would flood supervisors with pings about empty grids.
- For each drawn grid, one of its on-duty workers (chosen with the same generator) gets a
  check-in request: a photo taken now and a live location inside the grid, within M minutes. A
  drawn grid whose workers are all off duty gets a NOBODY check, escalated to the grid's
  supervisors at once (during working hours somebody should be on duty).
- `record_photo` / `record_location` judge the worker's answer to their open check. A refused
  answer is remembered (and the worker may try again until the deadline). Photo and location
  both accepted before the deadline: PASSED. At the deadline: FAILED when the worker sent
  anything (the note says what was missing or wrong), SILENT when nothing came; either way the
  grid's supervisors (the nearest level with any) are pinged once and `escalated_at` is set.
- Every change publishes its event (models/events/staff.py: SpotCheckRequested, SpotCheckAnswerJudged,
  SpotCheckPassed, SpotCheckFailed) in its own transaction, so what the channel says about it
  commits with it; `ctx.on_notifications()` runs after the commit.
- The parts live in services/spot_check_plan.py (seed, times, draw, plan) and
  services/spot_check_answers.py (judging answers, ending checks); this module runs the rounds.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import select

from models.work_lifecycles import SPOT_CHECKS, initial
from models.events.staff import AnswerOutcome, AnswerProblem, SpotCheckRequested
from models.supervision import SpotCheck, SpotCheckRound, SpotCheckStatus
from services.context import ServiceContext
from services.db import transaction
from services.spot_check_answers import (
    AnswerResult,
    escalate,
    failure_reasons,
    finish_check,
    inside_grid,
    live_check_id,
    open_check_id,
    record_location,
    record_photo,
)
from services.spot_check_plan import (
    Pick,
    day_seed,
    draw_sample,
    on_duty_workers,
    plan_day,
    round_times,
    silent_grids,
    staffed_grids,
)
from services.working_time import calendar_of

log = logging.getLogger("onegrid.spot_checks")

FINISH_BATCH = 200

__all__ = [
    "AnswerOutcome", "AnswerProblem", "AnswerResult", "Pick", "day_seed", "draw_sample", "escalate",
    "failure_reasons", "finish_check", "finish_overdue", "inside_grid", "live_check_id", "on_duty_workers",
    "open_check_id", "plan_day", "record_location", "record_photo", "round_times", "silent_grids",
    "staffed_grids", "tick",
]


# -- the tick ---------------------------------------------------------------------------------------------


def tick(ctx: ServiceContext) -> int:
    """Finish overdue checks, then start the rounds that are due; returns how many checks changed or began."""
    if not ctx.settings.spot_check_enabled:
        return 0
    now = ctx.clock.now()
    changed = finish_overdue(ctx)
    calendar = calendar_of(ctx)
    if calendar.is_working_time(now):
        for row in plan_day(ctx, now.astimezone(calendar.tz).date()):
            if row.started_at is None and row.due_at <= now:
                changed += _start_round(ctx, row.day, row.round, now)
    return changed


def _start_round(ctx: ServiceContext, day: str, number: int, now: datetime) -> int:
    with transaction(ctx.sessions) as session:
        claimed = session.execute(sa.update(SpotCheckRound).where(
            SpotCheckRound.day == day, SpotCheckRound.round == number, SpotCheckRound.started_at.is_(None),
        ).values(started_at=now)).rowcount
        if claimed != 1:
            return 0  # another process started it
        row = session.get(SpotCheckRound, (day, number))
        seed = f"{row.seed}:{number}"
        picks = draw_sample(session, ctx, seed=seed, now=now)
        due = now + timedelta(minutes=ctx.settings.spot_check_answer_minutes)
        for pick in picks:
            if pick.worker_id is None:
                check = SpotCheck(grid_code=pick.grid_code, status=initial(SPOT_CHECKS, SpotCheckStatus.NOBODY), seed=seed, requested_at=now,
                                  due_at=now, finished_at=now, note="nobody_on_duty")
                session.add(check)
                session.flush()
                escalate(session, ctx, check, now)
                continue
            check = SpotCheck(grid_code=pick.grid_code, worker_id=pick.worker_id, status=initial(SPOT_CHECKS, SpotCheckStatus.PENDING),
                              seed=seed, requested_at=now, due_at=due)
            session.add(check)
            session.flush()
            ctx.publish(session, SpotCheckRequested(
                check_id=check.id, grid_code=check.grid_code, worker_id=check.worker_id, due_at=check.due_at,
                answer_minutes=ctx.settings.spot_check_answer_minutes))
        row.checks = len(picks)
        session.add(row)
        log.info("spot-check round %s/%s: %s", day, number, ", ".join(p.grid_code for p in picks) or "no silent grid")
    if picks:
        ctx.on_notifications()
    return len(picks)


def finish_overdue(ctx: ServiceContext) -> int:
    """Close every open check past its deadline: FAILED or SILENT, the supervisors pinged once."""
    finished = 0
    while True:
        with transaction(ctx.sessions) as session:
            now = ctx.clock.now()
            query = (select(SpotCheck).where(SpotCheck.status == SpotCheckStatus.PENDING, SpotCheck.due_at < now)
                     .order_by(SpotCheck.due_at, SpotCheck.id).limit(FINISH_BATCH))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = session.exec(query).all()
            for check in rows:
                finish_check(session, ctx, check, now)
        finished += len(rows)
        if len(rows) < FINISH_BATCH:
            break
    if finished:
        ctx.on_notifications()
    return finished
