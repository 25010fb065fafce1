"""A resident's report, from draft to case: submission, following an existing case, draft expiry, photo upkeep.

The draft (services/report_draft.py) lives in the conversation state; nothing of it reaches the case
store until `submit_report` or `follow_case`, each one transaction. Choosing a category, a place and
spotting duplicates is read-only (services/report_choices.py).

What callers may rely on:
- `submit_report` opens at most one case per (person, draft): a second Submit, concurrent or
  after a crash, returns the case of the first (`Submitted.created` False). The case, its
  photos, the reporter's follow, the receipt and `ReportReceived` (the channel's "registered"
  reply) commit together, before dispatch runs in the same transaction.
- Photos are validated and re-encoded without EXIF (services/photos.py) before anything is
  written; originals are kept only when `photo_original_retention_days` is above zero.
- A point outside every grid, an inactive category, a report over the hourly limit, or a
  resident without consent is refused and nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.events.resident import DraftExpired, ReplyTo, ReportReceived
from models.lifecycle import OPEN, Actor, Role, Status
from models.resident import CaseFollower, FollowKind, ReportKind, ReportReceipt
from models.tables import Case, CaseSource, Category, FsmState, OutboxItem, Person, Photo
from services import cases
from services.context import ServiceContext
from services.db import transaction
from services.photos import CleanPhoto, clean_photo, save_photo
from services.retention import apply_retention
from services.report_draft import (
    DRAFT_STATE_PREFIX,
    CaseClosedMeanwhile,
    CategoryUnavailable,
    DraftIncomplete,
    ReportDraft,
)
from services.residents import ConsentRequired, check_report_limit

log = logging.getLogger(__name__)


# -- submission -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submitted:
    case_id: int
    number: str
    created: bool  # False: this draft had already been submitted; nothing new was written
    kind: ReportKind
    handle_due_at: datetime | None


def receipt_for(ctx: ServiceContext, *, person_id: int, draft_id: str) -> Submitted | None:
    """What an already submitted draft became, or None."""
    with ctx.sessions() as session:
        return _receipt(session, person_id, draft_id)


def _receipt(session: Session, person_id: int, draft_id: str) -> Submitted | None:
    row = session.exec(select(ReportReceipt, Case).join(Case, Case.id == ReportReceipt.case_id).where(
        ReportReceipt.person_id == person_id, ReportReceipt.draft_id == draft_id)).first()
    if row is None:
        return None
    receipt, case = row
    return Submitted(case.id, case.number, False, ReportKind(receipt.kind), case.handle_due_at)


def _resident(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None or person.consented_at is None or person.deleted_at is not None:
        raise ConsentRequired(str(person_id))
    return person


def clean_all(ctx: ServiceContext, photos: Sequence[bytes]) -> list[tuple[CleanPhoto, str, str | None]]:
    """Clean and store each picture (content-addressed, so a retry rewrites the same files)."""
    keep = ctx.settings.photo_original_retention_days > 0
    stored = []
    for data in photos:
        clean = clean_photo(data)
        path, original = save_photo(ctx.settings.data_dir, clean, original=data if keep else None)
        stored.append((clean, path, original))
    return stored


def forget_originals(ctx: ServiceContext, stored: Sequence[tuple[CleanPhoto, str, str | None]]) -> None:
    """After a refused submission: an original (EXIF, GPS and all) that no photo row names is deleted.

    Clean copies may stay (they carry nothing personal, and another case may use the same file).
    """
    paths = [original for _clean, _path, original in stored if original]
    if not paths:
        return
    with ctx.sessions() as session:
        named = set(session.exec(select(Photo.original_path).where(Photo.original_path.in_(paths))).all())
    for rel in set(paths) - named:
        (ctx.settings.data_dir / rel).unlink(missing_ok=True)


def add_photos(session: Session, *, case_id: int, person_id: int, draft: ReportDraft,
                stored: Sequence[tuple[CleanPhoto, str, str | None]], now: datetime) -> None:
    for meta, (clean, path, original) in zip(draft.photos, stored, strict=True):
        session.add(Photo(case_id=case_id, uploader_id=person_id, purpose="report", telegram_file_id=meta.file_id,
                          telegram_file_unique_id=meta.file_unique_id, path=path, original_path=original,
                          phash=clean.phash, width=clean.width, height=clean.height, created_at=now))


def _received(session: Session, ctx: ServiceContext, result: Submitted, person_id: int, reply_to: ReplyTo) -> None:
    ctx.publish(session, ReportReceived(case_id=result.case_id, number=result.number, person_id=person_id,
                                        kind=result.kind, handle_due_at=result.handle_due_at, reply_to=reply_to))


def submit_report(ctx: ServiceContext, *, person_id: int, draft: ReportDraft, photos: Sequence[bytes],
                  reply_to: ReplyTo | None = None) -> Submitted:
    """Register the draft as a new case (立案) and hand it to dispatch; see the module docstring.

    `photos` are the draft's pictures' bytes, in draft order. `ReportReceived` (answered in `reply_to`,
    by default the draft's chat) is published in the same transaction as the case.
    """
    reply_to = reply_to or ReplyTo(draft.chat_id)
    if draft.category is None or not draft.located:
        raise DraftIncomplete(draft.draft_id)
    if len(photos) != len(draft.photos):
        raise ValueError("one picture per draft photo is needed")
    existing = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
    if existing is not None:
        return existing
    stored = clean_all(ctx, photos)
    outcome: list[Submitted] = []

    def attach(session: Session, case: Case) -> None:
        _resident(session, person_id)
        category = session.exec(select(Category).where(Category.code == case.category_code)).one()
        if category.photo_required and not draft.photos:
            raise DraftIncomplete(f"{draft.draft_id}: {category.code} needs a photo")
        check_report_limit(session, ctx, person_id=person_id)
        now = ctx.clock.now()
        session.add(ReportReceipt(person_id=person_id, draft_id=draft.draft_id, case_id=case.id,
                                  kind=ReportKind.NEW_CASE, created_at=now))
        session.add(CaseFollower(case_id=case.id, person_id=person_id, kind=FollowKind.REPORTER, created_at=now))
        add_photos(session, case_id=case.id, person_id=person_id, draft=draft, stored=stored, now=now)
        # The unique (person, draft) receipt stops a concurrent second Submit here, before dispatch.
        session.flush()
        result = Submitted(case.id, case.number, True, ReportKind.NEW_CASE, case.handle_due_at)
        _received(session, ctx, result, person_id, reply_to)
        outcome.append(result)

    try:
        cases.report_case(
            ctx, actor=Actor(Role.RESIDENT, person_id), source=CaseSource.RESIDENT, category_code=draft.category,
            lat=draft.lat, lon=draft.lon, description=draft.description or "", before_dispatch=attach,
        )
    except IntegrityError:
        again = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
        if again is None:
            forget_originals(ctx, stored)
            raise
        return again
    except cases.UnknownCategory as exc:
        forget_originals(ctx, stored)
        raise CategoryUnavailable(draft.category) from exc
    except Exception:
        forget_originals(ctx, stored)
        raise
    return outcome[0]


def follow_case(ctx: ServiceContext, *, person_id: int, draft: ReportDraft, case_id: int,
                photos: Sequence[bytes], reply_to: ReplyTo | None = None) -> Submitted:
    """"The same problem": the resident follows `case_id`, its report count goes up, their photos join it.

    Idempotent per draft like `submit_report`. Raises `CaseClosedMeanwhile` when the case is no
    longer open, and `ReportLimitReached` over the hourly limit (following counts as a report).
    """
    reply_to = reply_to or ReplyTo(draft.chat_id)
    if len(photos) != len(draft.photos):
        raise ValueError("one picture per draft photo is needed")
    existing = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
    if existing is not None:
        return existing
    stored = clean_all(ctx, photos)
    try:
        with transaction(ctx.sessions) as session:
            _resident(session, person_id)
            check_report_limit(session, ctx, person_id=person_id)
            case = session.get(Case, case_id)
            if case is None or Status(case.status) not in OPEN:
                raise CaseClosedMeanwhile(str(case_id))
            now = ctx.clock.now()
            session.add(ReportReceipt(person_id=person_id, draft_id=draft.draft_id, case_id=case.id,
                                      kind=ReportKind.FOLLOW, created_at=now))
            already = session.exec(select(CaseFollower).where(CaseFollower.case_id == case_id,
                                                              CaseFollower.person_id == person_id)).first()
            add_photos(session, case_id=case_id, person_id=person_id, draft=draft, stored=stored, now=now)
            if already is None:
                session.add(CaseFollower(case_id=case_id, person_id=person_id, kind=FollowKind.FOLLOWER,
                                         created_at=now))
                # Counted in SQL, so concurrent followers never overwrite each other's increment; a
                # resident reporting their own case again adds photos but is not a second reporter.
                session.execute(sa.update(Case).where(Case.id == case_id)
                                .values(report_count=Case.report_count + 1))
            session.flush()
            session.refresh(case)
            if not case.drill:  # a drill is never relayed upstream
                session.add(OutboxItem(case_id=case.id, topic="case.reported_again",
                                       payload={"number": case.number, "report_count": case.report_count,
                                                "at": now.isoformat()},
                                       next_attempt_at=now, created_at=now))
            result = Submitted(case.id, case.number, True, ReportKind.FOLLOW, case.handle_due_at)
            _received(session, ctx, result, person_id, reply_to)
    except IntegrityError:
        again = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
        if again is None:
            forget_originals(ctx, stored)
            raise
        return again
    except Exception:
        forget_originals(ctx, stored)
        raise
    ctx.on_notifications()
    return result


# -- expiry -----------------------------------------------------------------------------------------

def expire_drafts(ctx: ServiceContext) -> int:
    """Forget report drafts untouched for `report_draft_timeout_minutes` (drafts kept in the store).

    Each drop publishes `DraftExpired` in the same transaction, so its owner is told. Drafts
    in Redis are expired when their owner next writes (see handlers/resident_report.py).
    Returns how many drafts were dropped.
    """
    minutes = ctx.settings.report_draft_timeout_minutes
    now = ctx.clock.now()
    dropped = 0
    with transaction(ctx.sessions) as session:
        rows = session.exec(select(FsmState).where(FsmState.state.startswith(DRAFT_STATE_PREFIX))).all()
        for row in rows:
            try:
                draft = ReportDraft.from_state(row.data or {})
            except ValueError:
                draft = None
            if draft is not None and not draft.expired(now, timedelta(minutes=minutes)):
                continue
            session.delete(row)
            dropped += 1
            if draft is None:
                continue
            person = session.exec(select(Person).where(Person.telegram_user_id == draft.chat_id)).first()
            ctx.publish(session, DraftExpired(chat_id=draft.chat_id, person_id=person.id if person else None,
                                              minutes=minutes))
    if dropped:
        ctx.on_notifications()
    return dropped


def sweep(ctx: ServiceContext) -> dict[str, int]:
    """The periodic job of the resident side: expire quiet drafts, purge photo originals past retention,
    and apply the retention policy of finished cases (services/retention.py)."""
    return {"drafts_expired": expire_drafts(ctx), "originals_purged": purge_originals(ctx), **apply_retention(ctx)}


def purge_originals(ctx: ServiceContext) -> int:
    """Delete photo originals older than the retention setting; returns how many were removed."""
    days = ctx.settings.photo_original_retention_days
    cutoff = ctx.clock.now() - timedelta(days=days)
    removed: list[str] = []
    with transaction(ctx.sessions) as session:
        # Only residents' report photos: proof photos follow the work-order side's own rules.
        query = select(Photo).where(Photo.original_path.is_not(None), Photo.purpose == "report")
        if days > 0:
            query = query.where(Photo.created_at < cutoff)
        for photo in session.exec(query.limit(1000)):
            removed.append(photo.original_path)
            photo.original_path = None
    for rel in removed:
        (ctx.settings.data_dir / rel).unlink(missing_ok=True)
    return len(removed)
