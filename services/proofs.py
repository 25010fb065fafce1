"""Completing a task with proof: photos of the finished work, then the worker's location on site.

What callers may rely on:
- Every function is one transaction; a refusal raises a `WorkError` subclass and writes nothing
  (except: a location refused for distance or accuracy is kept on the draft, so it can be
  submitted flagged without being sent again).
- 1..`proof_max_photos` photos, each cleaned by services.photos and refused when it is the same
  picture as the resident's, an earlier proof of the case or one of the worker's recent proofs
  elsewhere, or the very same file or bytes as anyone's recent proof; then a location judged by
  `judge_location`. When every task of the case is done the case moves to AWAITING_VERIFICATION
  and supervisors get the proof card.
- A proof is flagged for the supervisor (services/proof_checks.py) when its live location jumped
  faster than 200 km/h, its point equals another closure's, or a photo looks like another
  worker's proof in the grid; the worker is not told.
- Each step publishes its event (CompletionStarted, ProofPhotoAdded, ProofPhotosCleared,
  ProofLocationHeld, ProofSubmitted); the channel's renderer answers the worker from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, select

from models.events.work import (
    CompletionStarted,
    ProofLocationHeld,
    ProofPhotoAdded,
    ProofPhotosCleared,
    ProofSubmitted,
)
from models.lifecycle import Action, Actor, Status
from models.tables import Case, Category, Person, Photo, Proof
from models.work import CaseTask, Completion, CompletionStatus, TaskStatus
from models.work_lifecycles import COMPLETIONS, TASKS, CompletionAction, TaskAction, guard, initial
from services import proof_checks, verification
from services.cases import apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.photos import MAX_BYTES, PhotoRejected, clean_photo, is_same_picture, save_photo
from services.work_common import (
    LocationMissing,
    LocationRefused,
    NotYourOrder,
    PhotosMissing,
    ProofPhotoRefused,
    SamePicture,
    TaskNotOpen,
    TooManyPhotos,
    completing_role,
    note_event,
    task_holder,
)
from services.work_rules import RECENT_PROOFS, LocationFix, LocationJudgement, LocationProblem, judge_location


@dataclass(frozen=True)
class CompletionView:
    completion_id: int
    case_number: str
    photos: int
    max_photos: int
    has_location: bool


class LocationOutcome(StrEnum):
    SUBMITTED = "submitted"
    NEEDS_DECISION = "needs_decision"  # outside radius or too vague: send again, or submit flagged


@dataclass(frozen=True)
class LocationResult:
    outcome: LocationOutcome
    case_number: str
    judgement: LocationJudgement
    live: bool
    case_status: str
    waiting_for: list[str] = field(default_factory=list)  # department codes not done yet (joint cases)


def _task_for_completion(session: Session, task_id: int, worker: Person) -> tuple[CaseTask, Case]:
    task = session.get(CaseTask, task_id)
    if task is None or task.assignee_id != worker.id:
        raise NotYourOrder(str(task_id))
    case = session.get(Case, task.case_id)
    if task.status == TaskStatus.DONE:
        raise TaskNotOpen(case.number, Status.AWAITING_VERIFICATION.value
                          if case.status == Status.AWAITING_VERIFICATION else "done")
    if task.status != TaskStatus.ACCEPTED or Status(case.status) not in (Status.IN_PROGRESS, Status.REWORK):
        raise TaskNotOpen(case.number, case.status)
    return task, case


def _view(case: Case, draft: Completion, ctx: ServiceContext) -> CompletionView:
    return CompletionView(draft.id, case.number, len(draft.photo_ids), ctx.settings.proof_max_photos,
                          draft.lat is not None)


def start_completion(ctx: ServiceContext, *, task_id: int, worker_id: int) -> CompletionView:
    """Open (or resume: nothing sent before is lost) the worker's proof for a task they hold."""
    with transaction(ctx.sessions) as session:
        worker = task_holder(session, worker_id)
        task, case = _task_for_completion(session, task_id, worker)
        draft = session.exec(select(Completion).where(
            Completion.task_id == task.id, Completion.worker_id == worker.id,
            Completion.status == CompletionStatus.DRAFT).order_by(Completion.id.desc())).first()
        if draft is None:
            draft = Completion(case_id=case.id, task_id=task.id, worker_id=worker.id,
                               status=initial(COMPLETIONS, CompletionStatus.DRAFT), started_at=ctx.clock.now())
            session.add(draft)
            session.flush()
        view = _view(case, draft, ctx)
        ctx.publish(session, CompletionStarted(completion_id=draft.id, case_id=case.id, task_id=task.id,
                                               worker_id=worker.id, photos=view.photos, max_photos=view.max_photos))
    ctx.on_notifications()
    return view


def _draft(session: Session, completion_id: int, worker: Person) -> tuple[Completion, CaseTask, Case]:
    draft = session.exec(select(Completion).where(Completion.id == completion_id).with_for_update()).first()
    if draft is None or draft.worker_id != worker.id:
        raise NotYourOrder(str(completion_id))
    task, case = _task_for_completion(session, draft.task_id, worker)
    if draft.status != CompletionStatus.DRAFT:
        raise TaskNotOpen(case.number, draft.status)
    return draft, task, case


def completion_view(ctx: ServiceContext, *, completion_id: int, worker_id: int) -> CompletionView:
    with ctx.sessions() as session:
        worker = task_holder(session, worker_id)
        draft, _task, case = _draft(session, completion_id, worker)
        return _view(case, draft, ctx)


def add_proof_photo(ctx: ServiceContext, *, completion_id: int, worker_id: int, data: bytes,
                    file_unique_id: str | None = None, file_id: str | None = None) -> CompletionView:
    """Check, clean and attach one proof photo. Raises ProofPhotoRefused, SamePicture or TooManyPhotos."""
    completion_view(ctx, completion_id=completion_id, worker_id=worker_id)  # refuse early, before decoding
    try:
        clean = clean_photo(data, max_bytes=MAX_BYTES)
    except PhotoRejected as exc:
        raise ProofPhotoRefused(exc.problem) from exc
    # Content-addressed, so writing before the commit is harmless: a refused photo's file is just unused.
    path, _original = save_photo(ctx.settings.data_dir, clean)
    with transaction(ctx.sessions) as session:
        worker = task_holder(session, worker_id)
        draft, _task, case = _draft(session, completion_id, worker)
        if len(draft.photo_ids) >= ctx.settings.proof_max_photos:
            raise TooManyPhotos(ctx.settings.proof_max_photos)
        _refuse_repeats(session, ctx, case, worker, clean.phash, file_unique_id)
        if proof_checks.exact_reuse(session, path=path, file_unique_id=file_unique_id, now=ctx.clock.now()):
            raise SamePicture("proof")  # another worker's proof photo, the very same file or bytes
        photo = Photo(case_id=case.id, uploader_id=worker.id, purpose="proof", telegram_file_id=file_id,
                      telegram_file_unique_id=file_unique_id, path=path, phash=clean.phash, width=clean.width,
                      height=clean.height, created_at=ctx.clock.now())
        session.add(photo)
        session.flush()
        draft.photo_ids = [*draft.photo_ids, photo.id]
        session.add(draft)
        view = _view(case, draft, ctx)
        ctx.publish(session, ProofPhotoAdded(completion_id=draft.id, case_id=case.id, worker_id=worker.id,
                                             photos=view.photos, max_photos=view.max_photos))
    ctx.on_notifications()
    return view


def _refuse_repeats(session: Session, ctx: ServiceContext, case: Case, worker: Person, phash: str,
                    file_unique_id: str | None) -> None:
    since = ctx.clock.now() - RECENT_PROOFS
    earlier = session.exec(select(Photo).where(
        sa.or_(Photo.case_id == case.id,
               sa.and_(Photo.uploader_id == worker.id, Photo.purpose == "proof", Photo.created_at >= since)),
    ).order_by(Photo.id.desc()).limit(2000)).all()
    for photo in earlier:
        kind = "report" if photo.purpose == "report" else "proof"
        if file_unique_id and photo.telegram_file_unique_id == file_unique_id:
            raise SamePicture(kind)
        if photo.phash and is_same_picture(phash, [photo.phash]):
            raise SamePicture(kind)


def clear_proof_photos(ctx: ServiceContext, *, completion_id: int, worker_id: int) -> CompletionView:
    """Drop the draft's photos so the worker can take them again."""
    with transaction(ctx.sessions) as session:
        worker = task_holder(session, worker_id)
        draft, _task, case = _draft(session, completion_id, worker)
        if draft.photo_ids:
            session.execute(sa.delete(Photo).where(Photo.id.in_(draft.photo_ids), Photo.uploader_id == worker.id,
                                                   Photo.purpose == "proof"))
        draft.photo_ids = []
        session.add(draft)
        view = _view(case, draft, ctx)
        ctx.publish(session, ProofPhotosCleared(completion_id=draft.id, case_id=case.id, worker_id=worker.id,
                                                max_photos=view.max_photos))
    ctx.on_notifications()
    return view


def submit_location(ctx: ServiceContext, *, completion_id: int, worker_id: int, fix: LocationFix) -> LocationResult:
    """Judge a location proof; when accepted the proof is submitted.

    Raises LocationRefused (nothing kept) for a forwarded, venue, via-bot or stale location, or a
    precise one clearly far from the site, and PhotosMissing before any photo. Outside the radius
    or too vague: kept on the draft and returned as NEEDS_DECISION (send again, or `submit_flagged`).
    A live location clearly far is kept too, so it is accepted when it arrives, but never flagged.
    """
    with transaction(ctx.sessions) as session:
        worker = task_holder(session, worker_id)
        draft, task, case = _draft(session, completion_id, worker)
        if not draft.photo_ids:
            raise PhotosMissing()
        judgement = _judge(session, ctx, case, fix)
        if judgement.refused_outright or (judgement.clearly_far and not fix.live):
            raise LocationRefused(judgement)
        _keep_fix(draft, fix, judgement)
        if judgement.accepted:
            result = _submit(session, ctx, draft, task, case, worker, judgement, flagged=False)
        else:
            session.add(draft)
            ctx.publish(session, ProofLocationHeld(
                completion_id=draft.id, case_id=case.id, worker_id=worker.id,
                problems=tuple(p.value for p in judgement.problems), distance_m=judgement.distance_m,
                allowed_m=judgement.allowed_m, accuracy_m=judgement.accuracy_m))
            result = LocationResult(LocationOutcome.NEEDS_DECISION, case.number, judgement, fix.live, case.status)
    ctx.on_notifications()
    return result


def submit_flagged(ctx: ServiceContext, *, completion_id: int, worker_id: int) -> LocationResult:
    """Submit with the last location kept, although it was outside what is accepted; the supervisor judges."""
    with transaction(ctx.sessions) as session:
        worker = task_holder(session, worker_id)
        draft, task, case = _draft(session, completion_id, worker)
        if not draft.photo_ids:
            raise PhotosMissing()
        if draft.lat is None or draft.distance_m is None:
            raise LocationMissing()
        judgement = LocationJudgement(draft.distance_m, draft.allowed_m or 0.0, 0.0,
                                      tuple(LocationProblem(p) for p in draft.problems), draft.accuracy_m or 0.0)
        if judgement.clearly_far:  # a live location still far away: only its arrival proves anything
            raise LocationRefused(judgement)
        result = _submit(session, ctx, draft, task, case, worker, judgement, flagged=bool(draft.problems),
                         submitted_anyway=True)
    ctx.on_notifications()
    return result


def track_live_location(ctx: ServiceContext, *, worker_id: int, fix: LocationFix) -> LocationResult | None:
    """A live location moved. Extends the time on site; a draft held back only for distance or
    accuracy is submitted as soon as the live position is good. Returns the result when it submitted."""
    if fix.message_id is None:
        return None
    with transaction(ctx.sessions) as session:
        worker = session.get(Person, worker_id)
        if worker is None or not worker.active:
            return None
        draft = session.exec(select(Completion).where(
            Completion.worker_id == worker.id, Completion.location_message_id == fix.message_id,
            Completion.status.in_([CompletionStatus.DRAFT, CompletionStatus.SUBMITTED]),
        ).order_by(Completion.id.desc()).with_for_update()).first()
        if draft is None:
            return None
        case = session.get(Case, draft.case_id)
        judgement = _judge(session, ctx, case, fix)
        speed = proof_checks.track_speed(draft, lat=fix.lat, lon=fix.lon, at=fix.sent_at)
        if judgement.accepted:
            draft.last_seen_at = max(filter(None, [draft.last_seen_at, fix.sent_at]))
        session.add(draft)
        if draft.status != CompletionStatus.DRAFT or not judgement.accepted or not draft.photo_ids:
            return None
        task = session.get(CaseTask, draft.task_id)
        if task.status != TaskStatus.ACCEPTED or Status(case.status) not in (Status.IN_PROGRESS, Status.REWORK):
            return None
        _keep_fix(draft, fix, judgement)
        if speed is not None and speed > proof_checks.MAX_PLAUSIBLE_KMH:  # a jump no one makes on foot or by car
            draft.problems = [*draft.problems, proof_checks.ProofSuspicion.FAST_TRACK.value]
        result = _submit(session, ctx, draft, task, case, worker, judgement, flagged=False)
    ctx.on_notifications()
    return result


def _judge(session: Session, ctx: ServiceContext, case: Case, fix: LocationFix) -> LocationJudgement:
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    radius = category.proof_radius_m if category is not None else 100
    return judge_location(fix, case_lat=case.lat, case_lon=case.lon, radius_m=radius, now=ctx.clock.now(),
                          max_age_s=ctx.settings.proof_location_max_age_s,
                          max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)


def _keep_fix(draft: Completion, fix: LocationFix, judgement: LocationJudgement) -> None:
    draft.lat, draft.lon, draft.accuracy_m, draft.live = fix.lat, fix.lon, fix.accuracy_m, fix.live
    draft.distance_m, draft.allowed_m = judgement.distance_m, judgement.allowed_m
    draft.location_at, draft.location_message_id = fix.sent_at, fix.message_id
    draft.problems = [p.value for p in judgement.problems]
    if judgement.accepted:
        draft.last_seen_at = fix.sent_at


def _submit(session: Session, ctx: ServiceContext, draft: Completion, task: CaseTask, case: Case, worker: Person,
            judgement: LocationJudgement, *, flagged: bool, submitted_anyway: bool = False) -> LocationResult:
    now = ctx.clock.now()
    sources, target = guard(TASKS, TaskAction.SUBMIT)
    done = session.execute(
        sa.update(CaseTask)
        .where(CaseTask.id == task.id, CaseTask.version == task.version, CaseTask.status.in_(sources),
               CaseTask.assignee_id == worker.id)
        .values(status=target, done_at=now, updated_at=now, version=task.version + 1)
    ).rowcount
    if done != 1:
        raise TaskNotOpen(case.number, case.status)
    suspicions = proof_checks.suspicions(session, draft=draft, case=case, now=now)
    draft.problems = list(dict.fromkeys([*draft.problems, *suspicions]))
    flagged = flagged or bool(suspicions)  # the supervisor sees why; the worker is not told
    proof = Proof(case_id=case.id, worker_id=worker.id, lat=draft.lat, lon=draft.lon, accuracy_m=draft.accuracy_m,
                  live=draft.live, distance_m=draft.distance_m, flagged=flagged, created_at=now)
    session.add(proof)
    session.flush()
    draft.status = COMPLETIONS.step(CompletionStatus(draft.status), CompletionAction.SUBMIT)
    draft.submitted_at, draft.proof_id, draft.flagged = now, proof.id, flagged
    session.add(draft)
    session.flush()
    pending = session.exec(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.id != task.id,
        CaseTask.status.not_in([TaskStatus.DONE, TaskStatus.CANCELLED]))).all()
    actor = Actor(completing_role(worker), worker.id)
    waiting_for = [t.department_code for t in pending]
    if pending:
        note_event(session, ctx, case, Action.COMPLETE, actor,
                   f"{task.department_code}: done" + (" (flagged)" if flagged else ""))
    else:
        apply_action_in(session, ctx, case, action=Action.COMPLETE, actor=actor,
                        note="flagged: " + ", ".join(draft.problems) if flagged else None)
        verification.request_verification(session, ctx, case)
    ctx.publish(session, ProofSubmitted(completion_id=draft.id, case_id=case.id, task_id=task.id, worker_id=worker.id,
                                        distance_m=judgement.distance_m, live=draft.live, flagged=submitted_anyway,
                                        waiting_for=tuple(waiting_for)))
    return LocationResult(LocationOutcome.SUBMITTED, case.number, judgement, draft.live, case.status, waiting_for)
