"""The patrol service on SQLite and PostgreSQL: who may file, one case per draft, kept or handed to dispatch."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.lifecycle import Status
from models.patrol import PatrolReport
from models.resident import CaseFollower, ReportReceipt
from models.tables import Case, CaseSource, Photo
from models.work import WorkOffer
from services import patrol, work
from services.context import ServiceContext
from services.report_draft import DraftPhoto, ReportDraft
from services.work_common import WorkerInactive
from tests.worker_support import GRID, add_worker, make_ctx, picture, point_in, queued


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def draft_for(clock, chat_id: int) -> ReportDraft:  # noqa: ANN001
    lat, lon = point_in(GRID)
    draft = ReportDraft.new(chat_id=chat_id, now=clock.now())
    draft.patrol, draft.category, draft.lat, draft.lon, draft.grid_code = True, "exposed_garbage", lat, lon, GRID
    draft.description = "Bins overflowing"
    draft.photos = [DraftPhoto(file_id="f1", file_unique_id="u1")]
    return draft


def stored_cases(db) -> list[Case]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(Case)).all())


def test_a_second_press_returns_the_first_case_and_writes_nothing_more(ctx, db, clock) -> None:
    finder = add_worker(db.sessions, clock.now(), 7301)
    draft = draft_for(clock, 7301)
    first = patrol.submit_patrol_report(ctx, worker_id=finder, draft=draft, photos=[picture(1)])
    again = patrol.submit_patrol_report(ctx, worker_id=finder, draft=draft, photos=[picture(1)],
                                        hand_to_dispatch=True)
    assert (first.created, again.created, again.number) == (True, False, first.number)
    [case] = stored_cases(db)
    assert (case.source, case.status, case.handler_id, case.description) == (
        CaseSource.PATROL, Status.IN_PROGRESS, finder, "Bins overflowing")
    with db.sessions() as s:
        assert s.get(PatrolReport, case.id).handed_to_dispatch is False  # the second press changed nothing
        assert len(s.exec(select(ReportReceipt)).all()) == 1 and s.exec(select(CaseFollower)).all() == []
        [photo] = s.exec(select(Photo).where(Photo.case_id == case.id)).all()
        assert (photo.uploader_id, photo.purpose, photo.telegram_file_unique_id) == (finder, "report", "u1")
    texts = [n.payload.get("text", "") for n in queued(db.sessions, 7301, "sendMessage")]
    assert sum(f"Case <b>{case.number}</b> registered from your patrol" in t for t in texts) == 1


@pytest.mark.parametrize(("on_duty", "active", "refusal"), [(False, True, patrol.OffDuty),
                                                            (True, False, WorkerInactive)])
def test_only_an_active_worker_on_duty_files_one(ctx, db, clock, on_duty, active, refusal) -> None:
    finder = add_worker(db.sessions, clock.now(), 7311, on_duty=on_duty, active=active)
    with pytest.raises(refusal):
        patrol.submit_patrol_report(ctx, worker_id=finder, draft=draft_for(clock, 7311), photos=[picture(2)])
    assert stored_cases(db) == []
    assert queued(db.sessions, 7311) == []


def test_handed_to_dispatch_it_is_offered_to_the_pool_but_never_to_its_finder(ctx, db, clock) -> None:
    finder = add_worker(db.sessions, clock.now(), 7321)
    colleague = add_worker(db.sessions, clock.now(), 7322)
    done = patrol.submit_patrol_report(ctx, worker_id=finder, draft=draft_for(clock, 7321), photos=[picture(3)],
                                       hand_to_dispatch=True)
    [case] = stored_cases(db)
    assert (case.number, case.status, case.reporter_id, case.handler_id) == (done.number, Status.DISPATCHED,
                                                                             finder, None)
    with db.sessions() as s:
        assert [o.worker_id for o in s.exec(select(WorkOffer))] == [colleague]
    assert any(f"Work order {case.number}" in (n.payload.get("text") or n.payload.get("caption") or "")
               for n in queued(db.sessions, 7322))


def test_returned_by_the_pool_it_is_offered_again_but_never_to_its_finder(ctx, db, clock) -> None:
    finder = add_worker(db.sessions, clock.now(), 7331)
    first = add_worker(db.sessions, clock.now(), 7332)
    second = add_worker(db.sessions, clock.now(), 7333)
    patrol.submit_patrol_report(ctx, worker_id=finder, draft=draft_for(clock, 7331), photos=[picture(4)],
                                hand_to_dispatch=True)
    with db.sessions() as s:
        offer = s.exec(select(WorkOffer).where(WorkOffer.worker_id == first)).one()
    work.accept_offer(ctx, offer_id=offer.id, worker_id=first)
    work.return_order(ctx, worker_id=first, reason="Not our department", task_id=offer.task_id)
    with db.sessions() as s:
        rows = [(o.worker_id, o.status) for o in s.exec(select(WorkOffer).order_by(WorkOffer.id))]
    # Offered to both colleagues; the first took it and gave it back; only the second is asked again.
    assert rows[-1] == (second, "open") and finder not in [worker for worker, _ in rows]
