"""Proof anti-fraud (issue 13, item 7), on SQLite and PostgreSQL: a live location that jumps, coordinates
reused across closures, and a proof photo reused by another worker. The supervisor's card says why."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlmodel import select

from models.tables import Case, Proof
from services import work
from services.context import ServiceContext
from tests.worker_support import add_supervisor, add_worker, make_ctx, offset, picture, queued, report
from tests.store.test_worker_proofs import accept_first_offer


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def live_fix(case: Case, clock, *, north_m: float, message_id: int = 77) -> work.LocationFix:  # noqa: ANN001
    lat, lon = offset(case.lat, case.lon, north_m=north_m)
    return work.LocationFix(lat=lat, lon=lon, sent_at=clock.now(), accuracy_m=10.0, live_period=900,
                            message_id=message_id)


def proof_of(db, case_id: int) -> Proof:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(Proof).where(Proof.case_id == case_id)).one()


def card_text(db, supervisor_chat: int, case: Case) -> str:  # noqa: ANN001
    cards = [n.payload["text"] for n in queued(db.sessions, supervisor_chat, "sendMessage")
             if n.payload.get("text", "").startswith(f"🔍 Please verify case {case.number}")]
    return cards[-1]


def test_a_live_location_jumping_50_km_in_10_s_onto_the_site_is_flagged(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 7101)
    add_supervisor(db.sessions, clock.now(), 7102)
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, worker)
    draft = work.start_completion(ctx, task_id=task, worker_id=worker)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(71))
    held = work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker,
                                fix=live_fix(case, clock, north_m=50_000))
    assert held.outcome is work.LocationOutcome.NEEDS_DECISION
    clock.advance(seconds=10)
    landed = work.track_live_location(ctx, worker_id=worker, fix=live_fix(case, clock, north_m=15))
    assert landed is not None and landed.outcome is work.LocationOutcome.SUBMITTED
    assert proof_of(db, case.id).flagged is True
    assert "🚩 Check this proof: the live location moved faster than 200 km/h" in card_text(db, 7102, case)


def test_a_live_location_walking_onto_the_site_is_not_flagged(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 7111)
    add_supervisor(db.sessions, clock.now(), 7112)
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, worker)
    draft = work.start_completion(ctx, task_id=task, worker_id=worker)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(72))
    work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker, fix=live_fix(case, clock,
                                                                                                north_m=400))
    clock.advance(minutes=4)  # 385 m in 4 min: a brisk walk
    assert work.track_live_location(ctx, worker_id=worker, fix=live_fix(case, clock, north_m=15)) is not None
    assert proof_of(db, case.id).flagged is False
    assert "🚩" not in card_text(db, 7112, case)


def test_bit_identical_coordinates_of_another_closure_are_flagged(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 7121)
    add_supervisor(db.sessions, clock.now(), 7122)
    first, second = report(ctx), report(ctx)
    for case, seed, message_id in ((first, 73, 1), (second, 74, 2)):
        task = accept_first_offer(db, ctx, case.id, worker)
        draft = work.start_completion(ctx, task_id=task, worker_id=worker)
        work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(seed))
        fix = live_fix(first, clock, north_m=12, message_id=message_id)  # the very same point, to the last bit
        assert work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker,
                                    fix=fix).outcome is work.LocationOutcome.SUBMITTED
    assert proof_of(db, first.id).flagged is False
    assert proof_of(db, second.id).flagged is True
    assert "🚩 Check this proof: exactly the same coordinates as another closure" in card_text(db, 7122, second)


def _recompressed(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).resize((600, 450)).save(out, format="JPEG", quality=55)
    return out.getvalue()


def test_another_workers_proof_photo_is_refused_or_flagged_across_cases(ctx, db, clock) -> None:
    a = add_worker(db.sessions, clock.now(), 7131)
    b = add_worker(db.sessions, clock.now(), 7132)
    add_supervisor(db.sessions, clock.now(), 7133)
    first, second = report(ctx), report(ctx)
    task_a = accept_first_offer(db, ctx, first.id, a)
    draft_a = work.start_completion(ctx, task_id=task_a, worker_id=a)
    original = picture(75)
    work.add_proof_photo(ctx, completion_id=draft_a.completion_id, worker_id=a, data=original, file_unique_id="A-75")
    work.submit_location(ctx, completion_id=draft_a.completion_id, worker_id=a, fix=live_fix(first, clock,
                                                                                              north_m=10))

    task_b = accept_first_offer(db, ctx, second.id, b)
    draft_b = work.start_completion(ctx, task_id=task_b, worker_id=b)
    with pytest.raises(work.SamePicture):  # worker A's photo, the same bytes
        work.add_proof_photo(ctx, completion_id=draft_b.completion_id, worker_id=b, data=original)
    with pytest.raises(work.SamePicture):  # the same Telegram file, forwarded
        work.add_proof_photo(ctx, completion_id=draft_b.completion_id, worker_id=b, data=picture(76),
                             file_unique_id="A-75")
    # Re-encoded and resized: different bytes, the same picture. Accepted, but the supervisor is told.
    work.add_proof_photo(ctx, completion_id=draft_b.completion_id, worker_id=b, data=_recompressed(original))
    work.submit_location(ctx, completion_id=draft_b.completion_id, worker_id=b, fix=live_fix(second, clock,
                                                                                              north_m=20))
    assert proof_of(db, second.id).flagged is True
    assert "🚩 Check this proof: a photo looks like another worker's proof" in card_text(db, 7133, second)
