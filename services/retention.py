"""Retention of finished cases' personal data: precise coordinates, free text and photos.

What callers may rely on (`apply_retention`, run by the resident sweep every minute):
- Only cases in a final status (closed, cancelled, merged) whose last event is older than the
  setting are touched; 0 days means "keep forever" for that kind of data.
- `retention_precise_days`: the case point and every proof and completion point of the case are
  rounded to `COARSE_DECIMALS` decimals (about 100 m); `Case.coarsened_at` records it, once.
- `retention_text_days`: the case's description and address, and residents' 回访 comments, are emptied.
- `retention_photo_days`: the case's photo rows go, and their files (clean copies and originals)
  are deleted unless another photo row still names the same file.
- Audit events (case_event), statuses, times, categories, grids and the proof/feedback rows that
  the KPIs count are kept. Each kind is done in batches of `BATCH` cases per transaction.
- `elder_retention_days`: elder-roster records ended that long ago have their personal data emptied.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import Status
from models.resident import CaseFeedback
from models.tables import Case, Photo, Proof
from models.work import Completion
from services import elders
from services.context import ServiceContext
from services.db import transaction

COARSE_DECIMALS = 3  # 0.001° ≈ 111 m north-south, ≈ 95 m east-west in Shanghai
BATCH = 200
FINAL = (Status.CLOSED.value, Status.CANCELLED.value, Status.MERGED.value)


def apply_retention(ctx: ServiceContext) -> dict[str, int]:
    """Apply the retention policy once; returns how many cases each step changed."""
    settings, now = ctx.settings, ctx.clock.now()
    done = {"coordinates_coarsened": 0, "texts_purged": 0, "photos_purged": 0}
    if settings.retention_precise_days > 0:
        done["coordinates_coarsened"] = _coarsen(ctx, now - timedelta(days=settings.retention_precise_days), now)
    if settings.retention_text_days > 0:
        done["texts_purged"] = _purge_texts(ctx, now - timedelta(days=settings.retention_text_days))
    if settings.retention_photo_days > 0:
        done["photos_purged"] = _purge_photos(ctx, now - timedelta(days=settings.retention_photo_days))
    if settings.elder_retention_days > 0:  # the elder roster (services/elders.py): ended records
        done["elders_purged"] = elders.purge_ended(ctx, now - timedelta(days=settings.elder_retention_days), now)
    return done


def _finished_before(cutoff: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(Case.status.in_(FINAL), Case.updated_at < cutoff)


def _coarse(value: float | None) -> float | None:
    return None if value is None else round(value, COARSE_DECIMALS)


def _coarsen(ctx: ServiceContext, cutoff: datetime, now: datetime) -> int:
    with transaction(ctx.sessions) as session:
        cases = session.exec(select(Case).where(_finished_before(cutoff), Case.coarsened_at.is_(None))
                             .order_by(Case.id).limit(BATCH).with_for_update()).all()
        for case in cases:
            case.lat, case.lon, case.coarsened_at = _coarse(case.lat), _coarse(case.lon), now
            session.add(case)
            for row in [*_rows(session, Proof, case.id), *_rows(session, Completion, case.id)]:
                row.lat, row.lon = _coarse(row.lat), _coarse(row.lon)
                session.add(row)
    return len(cases)


def _rows(session: Session, table: type, case_id: int) -> list:
    return list(session.exec(select(table).where(table.case_id == case_id)).all())


def _purge_texts(ctx: ServiceContext, cutoff: datetime) -> int:
    with transaction(ctx.sessions) as session:
        ids = list(session.exec(select(Case.id).where(
            _finished_before(cutoff), sa.or_(Case.description != "", Case.address.is_not(None)))
            .order_by(Case.id).limit(BATCH)).all())
        if ids:
            session.execute(sa.update(Case).where(Case.id.in_(ids)).values(description="", address=None))
        comments = list(session.exec(select(CaseFeedback.case_id).join(Case, Case.id == CaseFeedback.case_id).where(
            _finished_before(cutoff), CaseFeedback.comment.is_not(None)).limit(BATCH)).all())
        if comments:
            session.execute(sa.update(CaseFeedback).where(CaseFeedback.case_id.in_(comments)).values(comment=None))
    return len(set(ids) | set(comments))


def _purge_photos(ctx: ServiceContext, cutoff: datetime) -> int:
    with transaction(ctx.sessions) as session:
        photos = session.exec(select(Photo).join(Case, Case.id == Photo.case_id).where(
            _finished_before(cutoff)).order_by(Photo.id).limit(BATCH * 3)).all()
        files = {p for photo in photos for p in (photo.path, photo.original_path) if p}
        cases = {photo.case_id for photo in photos}
        if photos:
            session.execute(sa.delete(Photo).where(Photo.id.in_([photo.id for photo in photos])))
            session.flush()
            still = set(session.exec(select(Photo.path).where(Photo.path.in_(files))).all())
            still |= set(session.exec(select(Photo.original_path).where(Photo.original_path.in_(files))).all())
            files -= still
    for rel in files:  # after the commit: a rolled-back purge leaves every file in place
        (ctx.settings.data_dir / rel).unlink(missing_ok=True)
    return len(cases)
