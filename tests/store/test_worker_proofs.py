"""Completion with proofs, verification and clears from the source, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlmodel import select

from models.lifecycle import Status
from models.tables import Case, CaseEvent, CaseSource, Photo, Proof
from models.work import CaseTask, Completion, CompletionStatus, Escalation, EscalationReason, TaskStatus, WorkOffer
from services import verification, work
from services.context import ServiceContext
from tests.worker_support import (
    add_person,
    add_supervisor,
    add_worker,
    make_ctx,
    offset,
    picture,
    queued,
    report,
)
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def accept_first_offer(db, ctx, case_id: int, worker_id: int) -> int:
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id, WorkOffer.worker_id == worker_id)).one()
    return work.accept_offer(ctx, offer_id=offer.id, worker_id=worker_id).task_id


def fix_at(case: Case, clock, *, north_m: float = 10.0, **kw) -> work.LocationFix:  # noqa: ANN001
    lat, lon = offset(case.lat, case.lon, north_m=north_m)
    return work.LocationFix(lat=lat, lon=lon, sent_at=clock.now(), **{"accuracy_m": 15.0, "live_period": 900, **kw})


def complete(ctx, case: Case, task_id: int, worker_id: int, clock, seed: int) -> work.LocationResult:  # noqa: ANN001
    draft = work.start_completion(ctx, task_id=task_id, worker_id=worker_id)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker_id, data=picture(seed),
                         file_unique_id=f"proof-{seed}")
    clock.advance(minutes=7)
    return work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker_id, fix=fix_at(case, clock))


def test_good_proof_moves_the_case_to_verification_and_cards_the_supervisor(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 701)
    boss = add_supervisor(db.sessions, clock.now(), 702)
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, worker)
    result = complete(ctx, case, task, worker, clock, seed=11)
    assert result.outcome is work.LocationOutcome.SUBMITTED and result.live
    assert result.judgement.distance_m == pytest.approx(10, abs=0.5)
    with db.sessions() as s:
        stored = s.get(Case, case.id)
        proof = s.exec(select(Proof)).one()
        completion = s.exec(select(Completion)).one()
        photo = s.exec(select(Photo).where(Photo.purpose == "proof")).one()
    assert (stored.status, stored.handler_id) == (Status.AWAITING_VERIFICATION, worker)
    assert (proof.worker_id, proof.live, proof.flagged, proof.accuracy_m) == (worker, True, False, 15.0)
    assert completion.status == CompletionStatus.SUBMITTED and completion.proof_id == proof.id
    # The stored copy is the cleaned one: a JPEG without EXIF.
    with Image.open(ctx.settings.data_dir / photo.path) as image:
        assert image.format == "JPEG" and not image.getexif()
    card, photo_message = queued(db.sessions, 702)
    assert card.payload["text"].startswith(f"🔍 Please verify case {case.number}")
    assert "Location: 10 m from the case point (live location, accuracy ±15 m)" in card.payload["text"]
    assert "Time on site: 7 min" in card.payload["text"]
    buttons = [b["callback_data"] for b in card.payload["reply_markup"]["inline_keyboard"][0]]
    assert buttons == [f"sv:a:{case.id}:{stored.version}", f"sv:r:{case.id}:{stored.version}"]
    assert photo_message.method == "sendPhoto" and photo_message.payload["photo_path"] == photo.path
    del boss


def test_same_picture_as_the_residents_or_an_earlier_proof_is_refused(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 711)
    original = picture(21)
    case = report(ctx, photo=original, photo_unique_id="resident-file")
    task = accept_first_offer(db, ctx, case.id, worker)
    draft = work.start_completion(ctx, task_id=task, worker_id=worker)
    # The resident's picture, re-saved at another quality: other bytes, same picture.
    again = io.BytesIO()
    Image.open(io.BytesIO(original)).save(again, format="JPEG", quality=60)
    with pytest.raises(work.SamePicture) as refused:
        work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=again.getvalue(),
                             file_unique_id="another-file")
    assert refused.value.earlier == "report"
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(22),
                         file_unique_id="proof-22")
    with pytest.raises(work.SamePicture) as refused:  # the very same Telegram file again
        work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(22),
                             file_unique_id="proof-22")
    assert refused.value.earlier == "proof"
    assert work.completion_view(ctx, completion_id=draft.completion_id, worker_id=worker).photos == 1


def test_joint_case_moves_on_only_when_every_department_is_done(ctx, db, clock) -> None:
    departments = ["street_office", "police_station", "market_regulation", "residents_committee"]
    workers = [add_worker(db.sessions, clock.now(), 720 + i, department_code=d) for i, d in enumerate(departments)]
    add_supervisor(db.sessions, clock.now(), 729)
    case = report(ctx, category="neighbour_dispute")
    tasks = [accept_first_offer(db, ctx, case.id, w) for w in workers]
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS
        accepts = s.exec(select(CaseEvent).where(CaseEvent.action == "accept")).all()
    assert [(e.from_status, e.to_status) for e in accepts] == [("dispatched", "in_progress")] + [
        ("in_progress", "in_progress")] * 3
    for index, (task, worker) in enumerate(zip(tasks, workers, strict=True)):
        result = complete(ctx, case, task, worker, clock, seed=30 + index)
        with db.sessions() as s:
            status = s.get(Case, case.id).status
        if index < 3:
            assert status == Status.IN_PROGRESS and len(result.waiting_for) == 3 - index
        else:
            assert status == Status.AWAITING_VERIFICATION and result.waiting_for == []
    [card, *photos] = queued(db.sessions, 729)
    assert card.payload["text"].count("Time on site") == 4 and len(photos) == 4


def test_far_or_vague_locations_can_be_submitted_flagged(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 731)
    add_supervisor(db.sessions, clock.now(), 732)
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, worker)
    draft = work.start_completion(ctx, task_id=task, worker_id=worker)
    with pytest.raises(work.PhotosMissing):
        work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker, fix=fix_at(case, clock))
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(41))
    far = work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker,
                               fix=fix_at(case, clock, north_m=250, accuracy_m=20.0))
    assert far.outcome is work.LocationOutcome.NEEDS_DECISION
    assert far.judgement.problems == (work.LocationProblem.TOO_FAR,) and round(far.judgement.distance_m) == 250
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.IN_PROGRESS and s.exec(select(Proof)).all() == []
    flagged = work.submit_flagged(ctx, completion_id=draft.completion_id, worker_id=worker)
    assert flagged.outcome is work.LocationOutcome.SUBMITTED
    with db.sessions() as s:
        assert s.exec(select(Proof)).one().flagged is True
        assert s.get(Case, case.id).status == Status.AWAITING_VERIFICATION
    card = queued(db.sessions, 732)[0].payload["text"]
    assert "⚠️ Flagged by the worker: 250 m away, 120 m allowed" in card


def test_refused_locations_keep_nothing(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 741)
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, worker)
    draft = work.start_completion(ctx, task_id=task, worker_id=worker)
    work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=worker, data=picture(42))
    stale = work.LocationFix(lat=case.lat, lon=case.lon, sent_at=clock.now() - timedelta(minutes=10))
    with pytest.raises(work.LocationRefused) as refused:
        work.submit_location(ctx, completion_id=draft.completion_id, worker_id=worker, fix=stale)
    assert refused.value.judgement.problems == (work.LocationProblem.STALE,)
    with db.sessions() as s:
        kept = s.get(Completion, draft.completion_id)
    assert (kept.lat, kept.status, len(kept.photo_ids)) == (None, CompletionStatus.DRAFT, 1)


def test_approve_closes_reject_sends_back_and_the_handler_never_verifies(ctx, db, clock) -> None:
    both = add_person(db.sessions, clock.now(), telegram_user_id=751, roles=["worker", "supervisor"],
                      area_code="SH-HP-01-001", department_code="greening_appearance", on_duty=True)
    boss = add_supervisor(db.sessions, clock.now(), 752, name="Boss Li")
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, both)
    complete(ctx, case, task, both, clock, seed=51)
    with db.sessions() as s:
        version = s.get(Case, case.id).version
        assert [r.supervisor_id for r in s.exec(select(verification.VerificationRequest))] == [boss]
    with pytest.raises(verification.OwnWork):
        verification.approve(ctx, case_id=case.id, supervisor_id=both, expected_version=version)

    with pytest.raises(verification.ReasonRequired):
        verification.reject(ctx, case_id=case.id, supervisor_id=boss, reason=" ", expected_version=version)
    verification.reject(ctx, case_id=case.id, supervisor_id=boss, reason="Bags still by the wall",
                        expected_version=version)
    with db.sessions() as s:
        assert s.get(Case, case.id).status == Status.REWORK
        assert s.get(CaseTask, task).status == TaskStatus.ACCEPTED
    rework = queued(db.sessions, 751)[-1]
    assert "Reason: Bags still by the wall" in rework.payload["text"]
    with pytest.raises(verification.CardOutdated):  # the old card cannot approve the new round
        verification.approve(ctx, case_id=case.id, supervisor_id=boss, expected_version=version)

    clock.advance(hours=1)
    draft = work.start_completion(ctx, task_id=task, worker_id=both)
    with pytest.raises(work.SamePicture):  # the rejected proof's photo cannot be sent again
        work.add_proof_photo(ctx, completion_id=draft.completion_id, worker_id=both, data=picture(51))
    complete(ctx, case, task, both, clock, seed=52)
    with db.sessions() as s:
        version = s.get(Case, case.id).version
    verification.approve(ctx, case_id=case.id, supervisor_id=boss, expected_version=version)
    with db.sessions() as s:
        closed = s.get(Case, case.id)
        statuses = [c.status for c in s.exec(select(Completion).order_by(Completion.id))]
    assert (closed.status, closed.verifier_id) == (Status.CLOSED, boss)
    assert statuses == [CompletionStatus.REJECTED, CompletionStatus.APPROVED]
    # No sender runs in store tests, so the cards were never delivered: a notice follows instead of an edit.
    assert queued(db.sessions, 752, "editMessageText") == []
    notices = [n.payload["text"] for n in queued(db.sessions, 752, "sendMessage")]
    assert any("approved and closed by Boss Li" in t for t in notices)
    assert "was verified and closed" in queued(db.sessions, 751)[-1].payload["text"]


def test_with_only_the_handler_as_supervisor_verification_is_escalated(ctx, db, clock) -> None:
    both = add_person(db.sessions, clock.now(), telegram_user_id=761, roles=["worker", "supervisor"],
                      area_code="SH-HP-01-001", department_code="greening_appearance", on_duty=True)
    case = report(ctx)
    task = accept_first_offer(db, ctx, case.id, both)
    complete(ctx, case, task, both, clock, seed=61)
    with db.sessions() as s:
        [row] = s.exec(select(Escalation)).all()
    assert row.reason == EscalationReason.NO_VERIFIER and row.notified_person_ids == []


def test_machine_cases_close_from_their_source_by_the_rule(ctx, db, clock) -> None:
    worker = add_worker(db.sessions, clock.now(), 771)
    add_supervisor(db.sessions, clock.now(), 772)
    untouched = report(ctx, source=CaseSource.SENSOR, source_event_id="s-1")
    assert verification.close_from_source(ctx, case_id=untouched.id) is verification.SourceClear.RESOLVED
    with db.sessions() as s:
        assert s.get(Case, untouched.id).status == Status.CLOSED  # 自动结案, which counts as closed in the KPIs
        last = s.exec(select(CaseEvent).where(CaseEvent.case_id == untouched.id).order_by(CaseEvent.id.desc())).first()
        assert (last.action, last.actor_role, last.note) == ("clear_at_source", "system", "Cleared at source")
        assert s.exec(select(CaseTask).where(CaseTask.case_id == untouched.id)).one().status == TaskStatus.CANCELLED

    handled = report(ctx, source=CaseSource.CAMERA, source_event_id="c-1")
    task = accept_first_offer(db, ctx, handled.id, worker)
    assert verification.close_from_source(ctx, case_id=handled.id) is verification.SourceClear.KEPT
    assert "reports the problem gone" in queued(db.sessions, 771)[-1].payload["text"]
    complete(ctx, handled, task, worker, clock, seed=71)
    assert verification.close_from_source(ctx, case_id=handled.id, note="camera 12") is verification.SourceClear.CLOSED
    with db.sessions() as s:
        closed = s.get(Case, handled.id)
        last = s.exec(select(CaseEvent).where(CaseEvent.case_id == handled.id).order_by(CaseEvent.id.desc())).first()
    assert closed.status == Status.CLOSED and last.note == "Cleared at source: camera 12"
    assert verification.close_from_source(ctx, case_id=handled.id) is verification.SourceClear.ALREADY_ENDED

    resident_case = report(ctx)
    with pytest.raises(verification.NotMachineSource):
        verification.close_from_source(ctx, case_id=resident_case.id)
