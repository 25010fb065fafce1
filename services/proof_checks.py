"""Anti-fraud checks on a proof (issue 13, item 7): what makes a proof suspicious for the supervisor.

What callers may rely on:
- `track_speed` is the speed in km/h between the draft's last kept position and a new live fix
  (None when there is nothing to compare); over `MAX_PLAUSIBLE_KMH` is `FAST_TRACK`.
- `suspicions` says, for a proof about to be submitted, whether its coordinates are bit-identical
  to another closure's (`REUSED_COORDINATES`), and whether one of its photos is the same picture
  (pHash) as another worker's proof in the same grid within `RECENT_PROOFS` (`PHOTO_OF_ANOTHER_PROOF`).
  These never refuse: the proof goes through, flagged, and the supervisor's card names them.
- `exact_reuse` finds a proof photo of anyone, on any case, within `RECENT_PROOFS` with the same
  Telegram file_unique_id or the same bytes: that is refused outright (SamePicture).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from geopy.distance import geodesic
from sqlmodel import Session, select

from models.tables import Case, Photo, Proof
from models.work import Completion
from services.photos import is_same_picture
from services.work_rules import RECENT_PROOFS

MAX_PLAUSIBLE_KMH = 200.0
MAX_COMPARED = 2000  # the most recent proof photos compared by pHash


class ProofSuspicion(StrEnum):
    FAST_TRACK = "fast_track"
    REUSED_COORDINATES = "reused_coordinates"
    PHOTO_OF_ANOTHER_PROOF = "photo_of_another_proof"


SUSPICIONS = frozenset(s.value for s in ProofSuspicion)


def track_speed(draft: Completion, *, lat: float, lon: float, at: datetime) -> float | None:
    """km/h from the draft's last kept position to (lat, lon) at `at`; None without an earlier position."""
    if draft.lat is None or draft.lon is None or draft.location_at is None:
        return None
    metres = geodesic((draft.lat, draft.lon), (lat, lon)).meters
    seconds = (at - draft.location_at).total_seconds()
    if seconds <= 0:
        return None if metres < 1 else float("inf")
    return metres / seconds * 3.6


def exact_reuse(session: Session, *, path: str, file_unique_id: str | None, now: datetime) -> bool:
    """Whether any proof photo in the window has the same bytes (content-addressed path) or Telegram file."""
    same = Photo.path == path
    if file_unique_id:
        same = sa.or_(same, Photo.telegram_file_unique_id == file_unique_id)
    return session.exec(select(Photo.id).where(
        Photo.purpose == "proof", Photo.created_at >= now - RECENT_PROOFS, same).limit(1)).first() is not None


def suspicions(session: Session, *, draft: Completion, case: Case, now: datetime) -> list[str]:
    """What the supervisor should look at twice in this proof (empty when nothing)."""
    found: list[str] = [p for p in draft.problems if p in SUSPICIONS]  # noted while the live location moved
    if draft.lat is not None and session.exec(select(Proof.id).where(
            Proof.lat == draft.lat, Proof.lon == draft.lon, Proof.case_id != case.id).limit(1)).first() is not None:
        found.append(ProofSuspicion.REUSED_COORDINATES.value)
    mine = session.exec(select(Photo.phash).where(Photo.id.in_(draft.photo_ids), Photo.phash.is_not(None))).all() \
        if draft.photo_ids else []
    if mine:
        others = session.exec(
            select(Photo.phash).join(Case, Case.id == Photo.case_id).where(
                Photo.purpose == "proof", Photo.uploader_id != draft.worker_id, Photo.case_id != case.id,
                Photo.created_at >= now - RECENT_PROOFS, Photo.phash.is_not(None), Case.grid_code == case.grid_code,
            ).order_by(Photo.id.desc()).limit(MAX_COMPARED)).all()
        if any(is_same_picture(phash, list(others)) for phash in mine):
            found.append(ProofSuspicion.PHOTO_OF_ANOTHER_PROOF.value)
    return list(dict.fromkeys(found))
