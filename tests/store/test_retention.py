"""Retention of finished cases (issue 13, item 9), on SQLite and PostgreSQL, with the replaceable clock.

Ten years after closure a case kept its exact point, its description and address, the proof's point
and every photo. Now each goes after its own setting; the audit events and KPI inputs stay.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.resident import CaseFeedback
from models.tables import Case, CaseEvent, Photo, Proof
from models.work import Completion
from services import reporting, verification
from services.context import ServiceContext
from tests.store.test_worker_proofs import accept_first_offer, complete
from tests.worker_support import add_person, add_supervisor, add_worker, make_ctx, picture, report

@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path, retention_precise_days=30, retention_text_days=90,
                    retention_photo_days=180)

def closed_case(ctx, db, clock) -> Case:  # noqa: ANN001
    resident = add_person(db.sessions, clock.now(), telegram_user_id=8801, roles=["resident"])
    worker = add_worker(db.sessions, clock.now(), 8802)
    boss = add_supervisor(db.sessions, clock.now(), 8803)
    case = report(ctx, reporter_id=resident, photo=picture(88), description="王先生 13812345678 门口垃圾",
                  address="12 Nanjing East Road")
    task = accept_first_offer(db, ctx, case.id, worker)
    complete(ctx, case, task, worker, clock, seed=89)
    with db.sessions() as s:
        version = s.get(Case, case.id).version
    verification.approve(ctx, case_id=case.id, supervisor_id=boss, expected_version=version)
    with db.sessions() as s:
        s.add(CaseFeedback(case_id=case.id, person_id=resident, closed_at=clock.now(), asked_at=clock.now(),
                           fixed=True, rating=4, comment="call me on 13812345678"))
        s.commit()
        return s.get(Case, case.id)

def snapshot(db, case_id: int) -> dict:  # noqa: ANN001
    with db.sessions() as s:
        case = s.get(Case, case_id)
        proof = s.exec(select(Proof).where(Proof.case_id == case_id)).one()
        completion = s.exec(select(Completion).where(Completion.case_id == case_id)).one()
        return {
            "case": (case.lat, case.lon, case.description, case.address, case.status),
            "proof": (proof.lat, proof.lon, proof.distance_m, proof.flagged),
            "completion": (completion.lat, completion.lon),
            "photos": [(p.purpose, p.path, p.original_path) for p in s.exec(select(Photo).where(
                Photo.case_id == case_id)).all()],
            "feedback": [(f.rating, f.fixed, f.comment) for f in s.exec(select(CaseFeedback).where(
                CaseFeedback.case_id == case_id)).all()],
            "events": [(e.action, e.to_status, e.at) for e in s.exec(select(CaseEvent).where(
                CaseEvent.case_id == case_id).order_by(CaseEvent.id)).all()],
        }

def test_a_closed_cases_points_text_and_photos_go_after_their_retention(ctx, db, clock) -> None:
    case = closed_case(ctx, db, clock)
    before = snapshot(db, case.id)
    assert before["case"][4] == Status.CLOSED and len(before["photos"]) == 2  # the resident's and the proof
    files = [ctx.settings.data_dir / path for _purpose, path, _original in before["photos"]]
    assert all(f.exists() for f in files)

    clock.advance(days=29)
    reporting.sweep(ctx)
    assert snapshot(db, case.id) == before  # nothing is due yet

    clock.advance(days=2)  # 31 days: the points are rounded to about 100 m, once
    reporting.sweep(ctx)
    after = snapshot(db, case.id)
    assert after["case"][:2] == (round(before["case"][0], 3), round(before["case"][1], 3))
    assert after["case"][:2] != before["case"][:2]
    assert after["proof"][:2] == (round(before["proof"][0], 3), round(before["proof"][1], 3))
    assert after["completion"] == after["proof"][:2]
    assert after["case"][2:] == before["case"][2:] and after["photos"] == before["photos"]
    reporting.sweep(ctx)
    assert snapshot(db, case.id) == after

    clock.advance(days=60)  # 91 days: the free text goes
    reporting.sweep(ctx)
    texts = snapshot(db, case.id)
    assert texts["case"][2:4] == ("", None)
    assert texts["feedback"] == [(4, True, None)]  # the rating (a KPI input) stays
    assert all(f.exists() for f in files)

    clock.advance(days=90)  # 181 days: the photos and their files go
    reporting.sweep(ctx)
    last = snapshot(db, case.id)
    assert last["photos"] == [] and not any(f.exists() for f in files)
    # What the audit and the KPIs read is untouched.
    assert last["events"] == before["events"]
    assert last["case"][4] == Status.CLOSED and last["proof"][2:] == before["proof"][2:]

def test_open_cases_are_never_touched_and_zero_keeps_for_ever(db, clock, tmp_path) -> None:
    ctx = make_ctx(db.sessions, clock, tmp_path, retention_precise_days=0, retention_text_days=0,
                   retention_photo_days=1)
    open_case = report(ctx, photo=picture(90), description="still open")
    closed = closed_case(ctx, db, clock)
    before_open, before_closed = snapshot_case(db, open_case.id), snapshot(db, closed.id)
    clock.advance(days=3650)
    reporting.sweep(ctx)
    assert snapshot_case(db, open_case.id) == before_open
    after = snapshot(db, closed.id)
    assert after["case"] == before_closed["case"] and after["proof"] == before_closed["proof"]
    assert after["photos"] == []

def snapshot_case(db, case_id: int) -> tuple:  # noqa: ANN001
    with db.sessions() as s:
        case = s.get(Case, case_id)
        photos = s.exec(select(Photo).where(Photo.case_id == case_id)).all()
        return case.lat, case.lon, case.description, case.address, len(photos)

def test_a_photo_file_another_case_still_uses_is_kept(ctx, db, clock) -> None:
    shared = picture(91)
    closed = closed_case(ctx, db, clock)
    with db.sessions() as s:
        resident_photo = s.exec(select(Photo).where(Photo.case_id == closed.id, Photo.purpose == "report")).one()
    clock.advance(days=100)
    other = report(ctx, photo=shared)  # a different file; then point it at the same clean copy
    with db.sessions() as s:
        s.add(Photo(case_id=other.id, purpose="report", path=resident_photo.path, created_at=clock.now()))
        s.commit()
    clock.advance(days=100)
    reporting.sweep(ctx)
    assert (ctx.settings.data_dir / resident_photo.path).exists()
    with db.sessions() as s:
        assert s.exec(select(Photo).where(Photo.case_id == closed.id)).all() == []
