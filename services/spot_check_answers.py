"""Answers to a spot check: judging a worker's photo and live location, and ending a check that did not pass.

See services/spot_checks.py for what callers may rely on. Every verdict is published as an event in
the answer's transaction (models/events/staff.py); the channel words it for the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import shapely
from sqlmodel import Session, select

from models.work_lifecycles import SPOT_CHECKS, SpotCheckAction
from models.events.staff import (
    AnswerKind,
    AnswerOutcome,
    AnswerProblem,
    SpotCheckAnswerJudged,
    SpotCheckFailed,
    SpotCheckPassed,
)
from models.supervision import SpotCheck, SpotCheckStatus
from models.tables import Area, Photo
from services.context import ServiceContext
from services.db import transaction
from services.photos import MAX_BYTES, PhotoRejected, clean_photo, is_same_picture, save_photo
from services.work import FUTURE_TOLERANCE_S, RECENT_PROOFS, LocationFix, judge_location


@dataclass(frozen=True)
class AnswerResult:
    outcome: AnswerOutcome
    check_id: int | None = None
    grid_code: str | None = None
    due_at: datetime | None = None
    status: SpotCheckStatus | None = None
    problems: tuple[AnswerProblem, ...] = ()
    newly_accepted: bool = False  # this answer made a part count that did not before
    age_s: float = 0.0  # of a refused, stale answer
    accuracy_m: float = 0.0
    reasons: list[str] = field(default_factory=list)  # codes of what failed, for a LATE result


def open_check_id(ctx: ServiceContext, *, worker_id: int) -> int | None:
    """The worker's open (PENDING) spot check, if any: what the bot's filter asks before claiming a message."""
    with ctx.sessions() as session:
        return session.exec(select(SpotCheck.id).where(SpotCheck.worker_id == worker_id,
                                                       SpotCheck.status == SpotCheckStatus.PENDING)
                            .order_by(SpotCheck.id.desc())).first()


def live_check_id(ctx: ServiceContext, *, worker_id: int, message_id: int) -> int | None:
    """The worker's open check whose live location is the message `message_id` (for live updates)."""
    with ctx.sessions() as session:
        return session.exec(select(SpotCheck.id).where(
            SpotCheck.worker_id == worker_id, SpotCheck.status == SpotCheckStatus.PENDING,
            SpotCheck.location_message_id == message_id)).first()


def _locked_open_check(session: Session, worker_id: int) -> SpotCheck | None:
    return session.exec(select(SpotCheck).where(SpotCheck.worker_id == worker_id,
                                                SpotCheck.status == SpotCheckStatus.PENDING)
                        .order_by(SpotCheck.id.desc()).with_for_update()).first()


def _progress(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime, *, kind: AnswerKind,
              problems: tuple[AnswerProblem, ...] = (), newly: bool = False, age_s: float = 0.0,
              accuracy_m: float = 0.0) -> AnswerResult:
    """After an answer was judged: PASSED when both parts count, else what is still missing."""
    if problems:
        outcome = AnswerOutcome.REFUSED
    elif check.photo_at is not None and check.location_at is not None:
        check.status = SPOT_CHECKS.step(SpotCheckStatus(check.status), SpotCheckAction.PASS)
        check.finished_at, check.note = now, None
        outcome = AnswerOutcome.PASSED
    elif check.photo_at is not None:
        outcome = AnswerOutcome.WAITING_FOR_LOCATION
    else:
        outcome = AnswerOutcome.WAITING_FOR_PHOTO
    session.add(check)
    if outcome is AnswerOutcome.PASSED:
        ctx.publish(session, SpotCheckPassed(check_id=check.id, grid_code=check.grid_code, worker_id=check.worker_id,
                                             due_at=check.due_at))
    else:
        ctx.publish(session, SpotCheckAnswerJudged(
            check_id=check.id, grid_code=check.grid_code, worker_id=check.worker_id, due_at=check.due_at, kind=kind,
            outcome=outcome, problems=problems, newly_accepted=newly, age_s=age_s, accuracy_m=accuracy_m))
    return AnswerResult(outcome, check.id, check.grid_code, check.due_at, SpotCheckStatus(check.status), problems,
                        newly, age_s, accuracy_m)


def _late(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> AnswerResult:
    finish_check(session, ctx, check, now)
    return AnswerResult(AnswerOutcome.LATE, check.id, check.grid_code, check.due_at, SpotCheckStatus(check.status),
                        reasons=failure_reasons(check))


def record_photo(ctx: ServiceContext, *, worker_id: int, data: bytes | None, message_date: datetime,
                 forwarded: bool = False, as_file: bool = False) -> AnswerResult:
    """Judge a photo for the worker's open check: sent as a photo, not forwarded, sent just now, a picture
    we can read (services.photos), not one the worker used before. `data` may be None for a refusal
    decided without it (a file, a forward)."""
    if open_check_id(ctx, worker_id=worker_id) is None:
        return AnswerResult(AnswerOutcome.NO_CHECK)
    now = ctx.clock.now()
    problem: AnswerProblem | None = None
    age = (now - message_date).total_seconds()
    clean = path = None
    if forwarded:
        problem = AnswerProblem.FORWARDED
    elif as_file or data is None:
        problem = AnswerProblem.AS_FILE
    elif age > ctx.settings.proof_location_max_age_s or age < -FUTURE_TOLERANCE_S:
        problem = AnswerProblem.STALE
    else:
        try:
            clean = clean_photo(data, max_bytes=MAX_BYTES)
        except PhotoRejected as exc:
            problem = AnswerProblem(exc.problem.value)
        else:  # content-addressed: writing before the commit is harmless (an unused file at worst)
            path, _original = save_photo(ctx.settings.data_dir, clean)
    with transaction(ctx.sessions) as session:
        check = _locked_open_check(session, worker_id)
        if check is None:
            return AnswerResult(AnswerOutcome.NO_CHECK)
        now = ctx.clock.now()
        if check.due_at < now:
            result = _late(session, ctx, check, now)
        else:
            if problem is None and clean is not None and _repeats(session, worker_id, clean.phash, now):
                problem = AnswerProblem.SAME_PICTURE
            newly = False
            if check.photo_at is not None:  # a photo that already counts stays; later ones change nothing
                problem = None
            elif problem is not None:
                check.photo_problem = problem.value
            elif clean is not None:
                newly = True
                check.photo_at, check.photo_path, check.photo_phash, check.photo_problem = now, path, clean.phash, None
            result = _progress(session, ctx, check, now, kind=AnswerKind.PHOTO,
                               problems=(problem,) if problem else (), newly=newly, age_s=age)
    ctx.on_notifications()  # a verdict on an open check may have queued a message
    return result


def _repeats(session: Session, worker_id: int, phash: str, now: datetime) -> bool:
    """Whether the picture is one the worker already sent for a spot check or as a work proof lately."""
    since = now - RECENT_PROOFS
    earlier = list(session.exec(select(SpotCheck.photo_phash).where(
        SpotCheck.worker_id == worker_id, SpotCheck.photo_phash.is_not(None), SpotCheck.requested_at >= since)
        .order_by(SpotCheck.id.desc()).limit(500)).all())
    earlier += session.exec(select(Photo.phash).where(
        Photo.uploader_id == worker_id, Photo.phash.is_not(None), Photo.created_at >= since)
        .order_by(Photo.id.desc()).limit(1500)).all()
    return is_same_picture(phash, earlier)


def record_location(ctx: ServiceContext, *, worker_id: int, lat: float, lon: float, live_period: int | None,
                    forwarded: bool, accuracy_m: float | None, message_date: datetime, venue: bool = False,
                    via_bot: bool = False, message_id: int | None = None, live_update: bool = False) -> AnswerResult:
    """Judge a location (or a live update of it) for the worker's open check: it counts when it is the
    worker's own (not forwarded, no venue, not via a bot), sent just now, accurate enough, LIVE, and
    inside the grid. A refused one is remembered; the worker may send another until the deadline.
    `live_update`: a move of a live location already sent (the worker hears only when it made it count)."""
    fix = LocationFix(lat=lat, lon=lon, sent_at=message_date, accuracy_m=accuracy_m, live_period=live_period,
                      forwarded=forwarded, venue=venue, via_bot=via_bot, message_id=message_id)
    with transaction(ctx.sessions) as session:
        check = _locked_open_check(session, worker_id)
        if check is None:
            return AnswerResult(AnswerOutcome.NO_CHECK)
        now = ctx.clock.now()
        if check.due_at < now:
            result = _late(session, ctx, check, now)
        else:
            # The work-proof rules, judged against the fix's own point: distance is 0, so only the
            # rules about the fix itself apply (forwarded, venue, via bot, stale, accuracy).
            judgement = judge_location(fix, case_lat=lat, case_lon=lon, radius_m=0, now=now,
                                       max_age_s=ctx.settings.proof_location_max_age_s,
                                       max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)
            problems = [AnswerProblem(p.value) for p in judgement.problems]
            if not fix.live:
                problems.append(AnswerProblem.NOT_LIVE)
            if not inside_grid(session, ctx, check.grid_code, lat=lat, lon=lon):
                problems.append(AnswerProblem.OUTSIDE_GRID)
            newly = False
            if check.location_at is not None:  # a location that already counts stays; later ones change nothing
                problems = []
            else:
                check.lat, check.lon, check.live, check.accuracy_m = lat, lon, fix.live, accuracy_m
                check.location_message_id = message_id
                if problems:
                    check.location_problem = ",".join(p.value for p in problems)
                else:
                    check.location_at, check.location_problem, newly = message_date, None, True
            kind = AnswerKind.LIVE_UPDATE if live_update else AnswerKind.LOCATION
            result = _progress(session, ctx, check, now, kind=kind, problems=tuple(problems), newly=newly,
                               age_s=judgement.age_s, accuracy_m=judgement.accuracy_m)
    ctx.on_notifications()  # a verdict on an open check may have queued a message
    return result


def inside_grid(session: Session, ctx: ServiceContext, grid_code: str, *, lat: float, lon: float) -> bool:
    """Whether (lat, lon) lies in the grid: the shared point → grid index, else the grid's own polygon
    (a point on an edge the index gives to a neighbour, or an index not rebuilt yet)."""
    if ctx.grid_map is not None and ctx.grid_map.lookup(lon, lat) == grid_code:
        return True
    geometry = session.exec(select(Area.geometry).where(Area.code == grid_code)).first()
    if not geometry:
        return False
    return bool(shapely.from_geojson(geometry).covers(shapely.Point(lon, lat)))


# -- finishing and escalating ---------------------------------------------------------------------------------


def failure_reasons(check: SpotCheck) -> list[str]:
    """Codes of what a finished check lacked: `no_answer`, or `no_photo` / `photo:<problem>` and
    `no_location` / `location:<problem>`."""
    if check.status == SpotCheckStatus.NOBODY:
        return ["nobody_on_duty"]
    if check.status == SpotCheckStatus.SILENT:
        return ["no_answer"]
    reasons = []
    if check.photo_at is None:
        reasons.append(f"photo:{check.photo_problem}" if check.photo_problem else "no_photo")
    if check.location_at is None:
        if check.location_problem:
            reasons += [f"location:{p}" for p in check.location_problem.split(",")]
        else:
            reasons.append("no_location")
    return reasons


def finish_check(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> None:
    """End an open check past its deadline: FAILED when the worker sent anything, else SILENT; escalated."""
    answered = (check.photo_at is not None or check.photo_problem is not None or check.lat is not None)
    check.status = SPOT_CHECKS.step(SpotCheckStatus(check.status),
                                    SpotCheckAction.FAIL if answered else SpotCheckAction.EXPIRE)
    check.finished_at = now
    check.note = "; ".join(failure_reasons(check))[:500]
    session.add(check)
    session.flush()
    escalate(session, ctx, check, now)


def escalate(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> None:
    """Publish a check that did not pass (its worker and the grid's supervisors hear of it), once."""
    ctx.publish(session, SpotCheckFailed(
        check_id=check.id, grid_code=check.grid_code, worker_id=check.worker_id, status=SpotCheckStatus(check.status),
        requested_at=check.requested_at, due_at=check.due_at, reasons=tuple(failure_reasons(check))))
    check.escalated_at = now
    session.add(check)
