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
- Every change commits with its notifications in one transaction; `ctx.on_notifications()` runs
  after the commit.
"""

from __future__ import annotations

import hashlib
import html
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

import shapely
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.lifecycle import Role
from models.supervision import SpotCheck, SpotCheckRound, SpotCheckStatus
from models.tables import Area, AreaLevel, Case, Person, Photo
from onegrid.i18n import N_, gettext_for
from services import dispatch
from services.areas import supervisor_group
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue
from services.photos import MAX_BYTES, PhotoRejected, clean_photo, is_same_picture, save_photo
from services.work import FUTURE_TOLERANCE_S, RECENT_PROOFS, LocationFix, judge_location
from services.working_time import WorkingCalendar, area_codes_of, calendar_of

log = logging.getLogger("onegrid.spot_checks")

FINISH_BATCH = 200


# -- pure parts: the seed, the times, the draw ---------------------------------------------------------


def day_seed(configured: str | None, day: date) -> str:
    """The seed of one city day: derived from the configured seed and the day, else fresh randomness."""
    if not configured:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{configured}|{day.isoformat()}".encode()).hexdigest()[:32]


def round_times(seed: str, day: date, calendar: WorkingCalendar, *, rounds: int,
                answer_minutes: int) -> list[datetime]:
    """`rounds` distinct whole minutes of `day`'s working time (sorted, aware UTC) from which a whole
    answer window of `answer_minutes` still fits in the same working interval. Empty on a day off.

    The usable minutes are cut into `rounds` equal slices and one minute is drawn in each, so the
    rounds spread over the day (no two checks three minutes apart) and stay unpredictable."""
    window = timedelta(minutes=answer_minutes)
    starts: list[tuple[datetime, int]] = []  # (first start, number of start minutes) per interval
    for begin, end in calendar.intervals_on(day):
        last = end - window
        if last >= begin:
            starts.append((begin, int((last - begin).total_seconds() // 60) + 1))
    total = sum(n for _, n in starts)
    if rounds <= 0 or total == 0:
        return []
    rng = random.Random(f"{seed}:times")
    slices = min(rounds, total)
    offsets = [rng.randrange(k * total // slices, (k + 1) * total // slices) for k in range(slices)]
    out = []
    for offset in offsets:
        for begin, n in starts:
            if offset < n:
                out.append(begin + timedelta(minutes=offset))
                break
            offset -= n
    return out


# -- who is silent, who is on duty ----------------------------------------------------------------------


def staffed_grids(session: Session) -> set[str]:
    """Grid codes that have at least one active worker."""
    rows = session.exec(select(Person.area_code, Person.roles).where(
        Person.area_code.is_not(None), Person.active.is_(True), Person.deleted_at.is_(None))).all()
    codes = {code for code, roles in rows if Role.WORKER.value in (roles or [])}
    if not codes:
        return set()
    return set(session.exec(select(Area.code).where(Area.code.in_(codes), Area.level == AreaLevel.GRID)).all())


def silent_grids(session: Session, *, now: datetime, days: int) -> list[str]:
    """Staffed grids with no case created in the `days` days before `now` and no open spot check, sorted."""
    staffed = staffed_grids(session)
    if not staffed:
        return []
    since = now - timedelta(days=days)
    recent = set(session.exec(select(Case.grid_code).where(
        Case.grid_code.in_(staffed), Case.created_at >= since).distinct()).all())
    open_checks = set(session.exec(select(SpotCheck.grid_code).where(
        SpotCheck.status == SpotCheckStatus.PENDING)).all())
    return sorted(staffed - recent - open_checks)


def on_duty_workers(session: Session, grid_code: str) -> list[Person]:
    """Active, reachable, on-duty workers of the grid with no open spot check elsewhere, by id."""
    people = session.exec(select(Person).where(
        Person.area_code == grid_code, Person.on_duty.is_(True), Person.active.is_(True),
        Person.telegram_user_id.is_not(None), Person.deleted_at.is_(None), Person.blocked_bot_at.is_(None),
    ).order_by(Person.id)).all()
    busy = set(session.exec(select(SpotCheck.worker_id).where(SpotCheck.status == SpotCheckStatus.PENDING)).all())
    return [p for p in people if p.has_role(Role.WORKER) and p.id not in busy]


@dataclass(frozen=True)
class Pick:
    grid_code: str
    worker_id: int | None  # None: nobody of the grid is on duty


def draw_sample(session: Session, ctx: ServiceContext, *, seed: str, now: datetime) -> list[Pick]:
    """The grids a round started `now` with `seed` checks, and whom it asks. Reads only."""
    settings = ctx.settings
    candidates = silent_grids(session, now=now, days=settings.spot_check_silent_days)
    calendar = calendar_of(ctx)
    if calendar.area_hours:  # grids with hours of their own are only checked during them
        candidates = [g for g in candidates if calendar.is_working_time(now, area_codes_of(session, g))]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(candidates, min(settings.spot_check_sample, len(candidates))))
    picks = []
    for grid in chosen:
        workers = on_duty_workers(session, grid)
        picks.append(Pick(grid, rng.choice(workers).id if workers else None))
    return picks


# -- the plan of a day ------------------------------------------------------------------------------------


def _day_key(day: date) -> str:
    return day.strftime("%Y%m%d")


def plan_day(ctx: ServiceContext, day: date) -> list[SpotCheckRound]:
    """The rounds of a city day: read from the store, or drawn and stored now (once, whoever is first)."""
    settings = ctx.settings
    key = _day_key(day)
    with ctx.sessions() as session:
        rows = session.exec(select(SpotCheckRound).where(SpotCheckRound.day == key)
                            .order_by(SpotCheckRound.round)).all()
    if rows:
        return list(rows)
    calendar = calendar_of(ctx)
    seed = day_seed(settings.spot_check_seed, day)
    times = round_times(seed, day, calendar, rounds=settings.spot_check_rounds_per_day,
                        answer_minutes=settings.spot_check_answer_minutes)
    if not times:
        return []
    try:
        with transaction(ctx.sessions) as session:
            for number, at in enumerate(times):
                session.add(SpotCheckRound(day=key, round=number, seed=seed, due_at=at))
    except IntegrityError:
        pass  # another process planned the day first: its plan stands
    with ctx.sessions() as session:
        return list(session.exec(select(SpotCheckRound).where(SpotCheckRound.day == key)
                                 .order_by(SpotCheckRound.round)).all())


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
                check = SpotCheck(grid_code=pick.grid_code, status=SpotCheckStatus.NOBODY, seed=seed, requested_at=now,
                                  due_at=now, finished_at=now, note="nobody_on_duty")
                session.add(check)
                session.flush()
                _escalate(session, ctx, check, now)
                continue
            check = SpotCheck(grid_code=pick.grid_code, worker_id=pick.worker_id, status=SpotCheckStatus.PENDING,
                              seed=seed, requested_at=now, due_at=due)
            session.add(check)
            session.flush()
            _send_request(session, ctx, check, now)
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
                _finish(session, ctx, check, now)
        finished += len(rows)
        if len(rows) < FINISH_BATCH:
            break
    if finished:
        ctx.on_notifications()
    return finished


# -- answering ----------------------------------------------------------------------------------------------


class AnswerOutcome(StrEnum):
    NO_CHECK = "no_check"  # the worker has no open spot check
    REFUSED = "refused"  # this photo or location does not count; try again before the deadline
    WAITING_FOR_LOCATION = "waiting_for_location"  # the photo counts; the live location is missing
    WAITING_FOR_PHOTO = "waiting_for_photo"  # the location counts; the photo is missing
    PASSED = "passed"
    LATE = "late"  # the deadline had passed: the check is finished (FAILED or SILENT) and escalated


class AnswerProblem(StrEnum):
    FORWARDED = "forwarded"
    AS_FILE = "as_file"  # a picture sent as a document: could be any old file
    STALE = "stale"  # not sent just now
    SAME_PICTURE = "same_picture"  # repeats an earlier spot-check or proof photo of the worker
    NOT_AN_IMAGE = "not_an_image"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    TRUNCATED = "truncated"
    VENUE = "venue"
    VIA_BOT = "via_bot"
    LOW_ACCURACY = "low_accuracy"
    NOT_LIVE = "not_live"
    OUTSIDE_GRID = "outside_grid"


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
    grid_label: str = ""  # the grid's name in the worker's language (HTML-escaped)


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


def _progress(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime, *,
              problems: tuple[AnswerProblem, ...] = (), newly: bool = False, age_s: float = 0.0,
              accuracy_m: float = 0.0) -> AnswerResult:
    """After an answer was judged: PASSED when both parts count, else what is still missing."""
    if problems:
        outcome = AnswerOutcome.REFUSED
    elif check.photo_at is not None and check.location_at is not None:
        check.status, check.finished_at, check.note = SpotCheckStatus.PASSED, now, None
        _tell(session, ctx, check, now,
              lambda _, grid, due: _("✅ Spot check of grid {grid} passed. Thank you!").format(grid=grid))
        outcome = AnswerOutcome.PASSED
    elif check.photo_at is not None:
        outcome = AnswerOutcome.WAITING_FOR_LOCATION
    else:
        outcome = AnswerOutcome.WAITING_FOR_PHOTO
    session.add(check)
    worker = session.get(Person, check.worker_id)
    return AnswerResult(outcome, check.id, check.grid_code, check.due_at, SpotCheckStatus(check.status), problems,
                        newly, age_s, accuracy_m, grid_label=_grid_label(session, check.grid_code, worker.locale))


def _late(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> AnswerResult:
    _finish(session, ctx, check, now)
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
    pinged = False
    with transaction(ctx.sessions) as session:
        check = _locked_open_check(session, worker_id)
        if check is None:
            return AnswerResult(AnswerOutcome.NO_CHECK)
        now = ctx.clock.now()
        if check.due_at < now:
            result = _late(session, ctx, check, now)
            pinged = True
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
            result = _progress(session, ctx, check, now, problems=(problem,) if problem else (), newly=newly,
                               age_s=age)
            pinged = result.outcome is AnswerOutcome.PASSED
    if pinged:
        ctx.on_notifications()
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
                    via_bot: bool = False, message_id: int | None = None) -> AnswerResult:
    """Judge a location (or a live update of it) for the worker's open check: it counts when it is the
    worker's own (not forwarded, no venue, not via a bot), sent just now, accurate enough, LIVE, and
    inside the grid. A refused one is remembered; the worker may send another until the deadline."""
    fix = LocationFix(lat=lat, lon=lon, sent_at=message_date, accuracy_m=accuracy_m, live_period=live_period,
                      forwarded=forwarded, venue=venue, via_bot=via_bot, message_id=message_id)
    pinged = False
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
            result = _progress(session, ctx, check, now, problems=tuple(problems), newly=newly,
                               age_s=judgement.age_s, accuracy_m=judgement.accuracy_m)
        pinged = result.outcome in (AnswerOutcome.PASSED, AnswerOutcome.LATE)
    if pinged:
        ctx.on_notifications()
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


def _finish(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> None:
    answered = (check.photo_at is not None or check.photo_problem is not None or check.lat is not None)
    check.status = SpotCheckStatus.FAILED if answered else SpotCheckStatus.SILENT
    check.finished_at = now
    check.note = "; ".join(failure_reasons(check))[:500]
    session.add(check)
    session.flush()
    if check.status == SpotCheckStatus.SILENT:
        _tell(session, ctx, check, now, lambda _, grid, due: _(
            "⏰ The spot check of grid {grid} is over: nothing arrived by {due}. Your supervisor was told.").format(
            grid=grid, due=due))
    else:
        _tell(session, ctx, check, now, lambda _, grid, due: _(
            "❌ The spot check of grid {grid} failed: {reasons}. Your supervisor was told.").format(
            grid=grid, reasons=html.escape(render_reasons(failure_reasons(check), _))))
    _escalate(session, ctx, check, now)


_REASONS = {
    "no_answer": N_("nothing was sent"),
    "nobody_on_duty": N_("nobody was on duty"),
    "no_photo": N_("no photo"),
    "no_location": N_("no location"),
    "photo:forwarded": N_("the photo was forwarded"),
    "photo:as_file": N_("the picture came as a file, not as a photo"),
    "photo:stale": N_("the photo was not sent at once"),
    "photo:same_picture": N_("the photo repeated an earlier one"),
    "location:forwarded": N_("the location was forwarded"),
    "location:venue": N_("a place picked on the map was sent instead of the worker's own position"),
    "location:via_bot": N_("the location came through another bot"),
    "location:stale": N_("the location was old"),
    "location:low_accuracy": N_("the location was too vague"),
    "location:not_live": N_("the location was not live"),
    "location:outside_grid": N_("the location was outside the grid"),
}
_UNREADABLE_PHOTO = N_("the photo could not be read")  # too large, not an image, cut off, a bomb


def render_reasons(codes: list[str], _) -> str:  # noqa: ANN001 - a gettext function
    """The reasons in the reader's words, joined with commas; unreadable photos share one phrase."""
    return ", ".join(_(_REASONS.get(code, _UNREADABLE_PHOTO if code.startswith("photo:") else code))
                     for code in codes)


def _grid_label(session: Session, grid_code: str, locale: str) -> str:
    area = session.exec(select(Area).where(Area.code == grid_code)).first()
    name = dispatch.localized(area, locale, grid_code)
    return html.escape(name if name == grid_code else f"{name} ({grid_code})")


Render = Callable[..., str]  # (gettext, grid label, local due time) -> the text


def _tell(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime, render: Render) -> None:
    """Queue a message to the check's worker, rendered in their language."""
    worker = session.get(Person, check.worker_id) if check.worker_id else None
    if worker is None or worker.telegram_user_id is None:
        return
    text = render(gettext_for(worker.locale), _grid_label(session, check.grid_code, worker.locale),
                  dispatch.local_time(check.due_at, ctx.timezone))
    enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=now, person_id=worker.id,
            payload={"text": text, "parse_mode": "HTML"})


def _send_request(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> None:
    minutes = ctx.settings.spot_check_answer_minutes
    _tell(session, ctx, check, now, lambda _, grid, due: _(
        "🔍 Spot check of grid {grid}\n"
        "By {due} (within {minutes} min), send from inside the grid:\n"
        "1. a photo taken now with the camera (not forwarded, not as a file);\n"
        "2. your live location: tap 📎 → Location → Share My Live Location.\n"
        "In the middle of completing an order? Finish it, or send /cancel first: until then your photo "
        "and location count for the order.").format(grid=grid, due=due, minutes=minutes))


def _escalate(session: Session, ctx: ServiceContext, check: SpotCheck, now: datetime) -> None:
    """Ping the grid's supervisors (the nearest level with any), and their group chat (in the grid's
    forum topic when one is bound), about a check that did not pass."""
    worker = session.get(Person, check.worker_id) if check.worker_id else None

    def text(locale: str) -> str:
        _ = gettext_for(locale)
        grid = _grid_label(session, check.grid_code, locale)
        if check.status == SpotCheckStatus.NOBODY:
            lines = [_("🔍 Spot check: nobody on duty in grid {grid}").format(grid=grid),
                     _("At {time}, during working hours, none of the grid's workers was on duty.").format(
                         time=dispatch.local_time(check.requested_at, ctx.timezone))]
        else:
            head = (_("🔍 Spot check: no answer from grid {grid}") if check.status == SpotCheckStatus.SILENT
                    else _("🔍 Spot check failed in grid {grid}"))
            lines = [head.format(grid=grid),
                     _("Worker: {name}").format(name=html.escape(worker.display_name if worker else "—")),
                     _("Asked at {asked} to answer by {due}.").format(
                         asked=dispatch.local_time(check.requested_at, ctx.timezone),
                         due=dispatch.local_time(check.due_at, ctx.timezone)),
                     _("What went wrong: {reasons}").format(
                         reasons=html.escape(render_reasons(failure_reasons(check), _)))]
        return "\n".join(lines)

    supervisors = dispatch.supervisors_of(session, check.grid_code)
    for person in supervisors:
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                payload={"text": text(person.locale), "parse_mode": "HTML"})
    group = supervisor_group(session, check.grid_code, grid_code=check.grid_code)
    if group is not None:
        payload = {"text": text(ctx.settings.default_locale), "parse_mode": "HTML"}
        if group[1] is not None:
            payload["message_thread_id"] = group[1]
        enqueue(session, chat_id=group[0], method="sendMessage", now=now, payload=payload)
    if not supervisors and group is None:
        log.warning("spot check %s of grid %s: no supervisor to tell", check.id, check.grid_code)
    check.escalated_at = now
    session.add(check)
