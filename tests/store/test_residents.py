"""Resident services on a real store (SQLite and PostgreSQL): submission, duplicates, follows, 回访, privacy."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.renderers.resident_views import reporter_label
from models.events.resident import FeedbackRequested, ReplyTo
from models.lifecycle import Action, Actor, Role, Status
from models.resident import CaseFeedback, CaseFollower, ReportReceipt
from models.tables import Case, CaseCounter, Category, Notification, Person, Photo
from onegrid.settings import Settings
from services import cases, feedback, reporting, residents
from services.context import ServiceContext
from onegrid.wiring import event_table, make_bus
from services.bus import EventBus, merge_tables
from services.db import transaction
from services.gridmap import GridMap
from services.photos import PhotoRejected
from services.report_choices import find_duplicate
from services.report_draft import DraftPhoto, ReportDraft
from tests.bot.resident_kit import INSIDE, OUTSIDE, jpeg_with_gps, offset, seed


@pytest.fixture
def ctx(db, clock, tmp_path: Path) -> ServiceContext:
    seed(db.sessions, clock)
    grid_map = GridMap()
    grid_map.rebuild(db.sessions)
    return ServiceContext(bus=make_bus(), sessions=db.sessions, clock=clock, grid_map=grid_map,
                          settings=Settings(_env_file=None, data_dir=tmp_path, database_url=db.url))


def resident(ctx: ServiceContext, telegram_user_id: int, *, consented: bool = True, locale: str = "en") -> int:
    with transaction(ctx.sessions) as s:
        p = Person(telegram_user_id=telegram_user_id, roles=["resident"], locale=locale, display_name="Ann",
                   consented_at=ctx.clock.now() if consented else None, created_at=ctx.clock.now())
        s.add(p)
        s.flush()
        return p.id


def draft(ctx: ServiceContext, chat_id: int, *, category: str = "exposed_garbage", where=INSIDE,
          photos: int = 1, draft_id: str | None = None) -> ReportDraft:
    d = ReportDraft.new(chat_id=chat_id, now=ctx.clock.now())
    if draft_id:
        d.draft_id = draft_id
    d.category = category
    d.lat, d.lon = where
    d.grid_code = ctx.grid_map.lookup(where[1], where[0])
    d.description = "bins"
    d.photos = [DraftPhoto(file_id=f"f{i}", file_unique_id=f"u{i}") for i in range(photos)]
    return d


def count(db, model) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_submission_writes_case_photos_follow_receipt_and_reply_together(ctx, db) -> None:
    person = resident(ctx, 9001)
    d = draft(ctx, 9001, photos=2)
    done = reporting.submit_report(ctx, person_id=person, draft=d, photos=[jpeg_with_gps(1), jpeg_with_gps(2)])
    assert done.created and done.number == "SH-20261121-000001"
    with db.sessions() as s:
        case = s.get(Case, done.case_id)
        assert (case.status, case.reporter_id, case.grid_code) == (Status.REGISTERED, person, "SH-CN-01-001")
        photos = s.exec(select(Photo).where(Photo.case_id == case.id).order_by(Photo.id)).all()
        assert [p.telegram_file_unique_id for p in photos] == ["u0", "u1"]
        assert all(p.original_path is None for p in photos)
        [reply] = s.exec(select(Notification).where(Notification.chat_id == 9001)).all()
        assert reply.payload["text"].startswith(f"✅ Registered as case <b>{done.number}</b>.")
        assert reply.case_id == case.id
        assert s.exec(select(CaseFollower).where(CaseFollower.case_id == case.id)).one().person_id == person


def test_concurrent_submits_of_one_draft_make_one_case(ctx, db) -> None:
    person = resident(ctx, 9002)
    d = draft(ctx, 9002)
    barrier = threading.Barrier(4)

    def go(_: int):  # noqa: ANN202
        barrier.wait()
        return reporting.submit_report(ctx, person_id=person, draft=d, photos=[jpeg_with_gps()])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(go, range(4)))
    assert len({r.case_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert count(db, Case) == 1 and count(db, ReportReceipt) == 1 and count(db, Photo) == 1
    assert count(db, Notification) == 1  # one "registered" reply, not four


def test_refusals_write_nothing(ctx, db, clock) -> None:
    stranger = resident(ctx, 9003, consented=False)
    with pytest.raises(residents.ConsentRequired):
        reporting.submit_report(ctx, person_id=stranger, draft=draft(ctx, 9003), photos=[jpeg_with_gps()])
    person = resident(ctx, 9004)
    with pytest.raises(cases.OutsideGrid):
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9004, where=OUTSIDE), photos=[jpeg_with_gps()])
    with pytest.raises(reporting.DraftIncomplete):  # exposed garbage needs a photo
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9004, photos=0), photos=[])
    with pytest.raises(PhotoRejected):
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9004), photos=[b"%PDF-1.4"])
    with transaction(ctx.sessions) as s:
        s.exec(select(Category).where(Category.code == "fallen_tree")).one().active = False
    with pytest.raises(reporting.CategoryUnavailable):
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9004, category="fallen_tree"),
                                photos=[jpeg_with_gps()])
    assert count(db, Case) == 0 and count(db, Photo) == 0 and count(db, Notification) == 0
    assert count(db, CaseCounter) == 0  # not even a case number was spent


def test_the_hourly_limit_counts_the_last_hour(ctx, db, clock) -> None:
    ctx.settings = ctx.settings.model_copy(update={"report_limit_per_hour": 2})
    person = resident(ctx, 9005)
    for i in range(2):
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9005, where=offset(INSIDE, east_m=10 * i)),
                                photos=[jpeg_with_gps(i)])
        clock.advance(minutes=20)
    with pytest.raises(residents.ReportLimitReached) as exc:
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9005), photos=[jpeg_with_gps(5)])
    assert exc.value.retry_at == clock.now() - timedelta(minutes=40) + timedelta(hours=1)
    assert count(db, Case) == 2
    clock.advance(minutes=21)  # the first report is now over an hour old
    residents.report_allowed(ctx, person_id=person)


def test_duplicates_are_the_nearest_open_case_of_the_category_within_its_radius(ctx, db) -> None:
    reporter = resident(ctx, 9006)
    near = reporting.submit_report(ctx, person_id=reporter, draft=draft(ctx, 9006), photos=[jpeg_with_gps()])
    find = lambda where, category="exposed_garbage": find_duplicate(  # noqa: E731
        ctx, category_code=category, lat=where[0], lon=where[1], person_id=None)
    assert find(offset(INSIDE, north_m=45)).case_id == near.case_id
    assert abs(find(offset(INSIDE, north_m=45)).distance_m - 45) < 1
    assert find(offset(INSIDE, north_m=55)) is None  # exposed garbage: 50 m
    assert find(INSIDE, category="fallen_tree") is None
    with transaction(ctx.sessions) as s:
        s.get(Case, near.case_id).status = Status.CLOSED
    assert find(INSIDE) is None  # closed cases are not duplicates


def test_following_counts_each_resident_once_and_keeps_their_photos(ctx, db) -> None:
    reporter, other = resident(ctx, 9007), resident(ctx, 9008)
    case = reporting.submit_report(ctx, person_id=reporter, draft=draft(ctx, 9007), photos=[jpeg_with_gps()])
    first = draft(ctx, 9008)
    joined = reporting.follow_case(ctx, person_id=other, draft=first, case_id=case.case_id,
                                   photos=[jpeg_with_gps(8)])
    again = reporting.follow_case(ctx, person_id=other, draft=first, case_id=case.case_id,
                                  photos=[jpeg_with_gps(8)])  # the same draft: a retry
    second = reporting.follow_case(ctx, person_id=other, draft=draft(ctx, 9008), case_id=case.case_id,
                                   photos=[jpeg_with_gps(9)])  # a new draft, same person
    own = reporting.follow_case(ctx, person_id=reporter, draft=draft(ctx, 9007, photos=0), case_id=case.case_id,
                                photos=[])
    assert (joined.created, again.created, second.created, own.created) == (True, False, True, True)
    assert count(db, CaseFollower) == 2
    with db.sessions() as s:
        assert s.get(Case, case.case_id).report_count == 2
        assert len(s.exec(select(Photo).where(Photo.case_id == case.case_id)).all()) == 3
    with transaction(ctx.sessions) as s:
        s.get(Case, case.case_id).status = Status.CLOSED
    with pytest.raises(reporting.CaseClosedMeanwhile):
        reporting.follow_case(ctx, person_id=other, draft=draft(ctx, 9008, photos=0), case_id=case.case_id,
                              photos=[])


def test_stage_messages_skip_the_actor_deleted_people_and_internal_steps(ctx, db) -> None:
    reporter, follower, gone = resident(ctx, 9009), resident(ctx, 9010, locale="zh_CN"), resident(ctx, 9011)
    worker = resident(ctx, 9012)
    case = reporting.submit_report(ctx, person_id=reporter, draft=draft(ctx, 9009), photos=[jpeg_with_gps()])
    for p, d in ((follower, draft(ctx, 9010, photos=0)), (gone, draft(ctx, 9011, photos=0))):
        reporting.follow_case(ctx, person_id=p, draft=d, case_id=case.case_id, photos=[])
    residents.delete_account(ctx, person_id=gone, reply_to=ReplyTo(9011))
    with db.sessions() as s:
        before = {n.id for n in s.exec(select(Notification))}
    cases.apply_action(ctx, case_id=case.case_id, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))
    cases.apply_action(ctx, case_id=case.case_id, action=Action.REASSIGN, actor=Actor(Role.SYSTEM))  # internal
    cases.apply_action(ctx, case_id=case.case_id, action=Action.ACCEPT, actor=Actor(Role.WORKER, worker))
    cases.apply_action(ctx, case_id=case.case_id, action=Action.RETURN, actor=Actor(Role.WORKER, worker),
                       note="wrong department")  # internal
    with db.sessions() as s:
        new = [n for n in s.exec(select(Notification).order_by(Notification.id)) if n.id not in before]
    assert [(n.chat_id, n.payload["text"][:1]) for n in new] == [
        (9009, "📨"), (9010, "📨"), (9009, "🔧"), (9010, "🔧")]
    assert new[1].payload["text"].startswith("📨 案件")


def test_feedback_answers_belong_to_their_resident_and_reopen_once(ctx, db, clock) -> None:
    reporter, other = resident(ctx, 9013), resident(ctx, 9014)
    worker, supervisor = resident(ctx, 9015), resident(ctx, 9016)
    case = reporting.submit_report(ctx, person_id=reporter, draft=draft(ctx, 9013), photos=[jpeg_with_gps()])
    for action, actor in [(Action.DISPATCH, Actor(Role.SYSTEM)), (Action.ACCEPT, Actor(Role.WORKER, worker)),
                          (Action.COMPLETE, Actor(Role.WORKER, worker)),
                          (Action.APPROVE, Actor(Role.SUPERVISOR, supervisor))]:
        cases.apply_action(ctx, case_id=case.case_id, action=action, actor=actor)
    with db.sessions() as s:
        fb = s.exec(select(CaseFeedback)).one()
    with pytest.raises(feedback.FeedbackNotFound):
        feedback.answer_fixed(ctx, feedback_id=fb.id, person_id=other, fixed=False, reply_to=ReplyTo(9014))
    view = feedback.answer_fixed(ctx, feedback_id=fb.id, person_id=reporter, fixed=False, reply_to=ReplyTo(9013))
    assert view.can_reopen
    with pytest.raises(feedback.AlreadyAnswered):
        feedback.answer_fixed(ctx, feedback_id=fb.id, person_id=reporter, fixed=True, reply_to=ReplyTo(9013))
    with pytest.raises(ValueError):
        feedback.rate(ctx, feedback_id=fb.id, person_id=reporter, rating=6, comment_invited=False,
                      reply_to=ReplyTo(9013))
    feedback.reopen(ctx, feedback_id=fb.id, person_id=reporter, note="still there", reply_to=ReplyTo(9013))
    with pytest.raises(feedback.AlreadyAnswered):
        feedback.reopen(ctx, feedback_id=fb.id, person_id=reporter, note="again", reply_to=ReplyTo(9013))
    with db.sessions() as s:
        assert s.get(Case, case.case_id).status == Status.REWORK
    clock.advance(minutes=5)
    for action, actor in [(Action.ACCEPT, Actor(Role.WORKER, worker)), (Action.COMPLETE, Actor(Role.WORKER, worker)),
                          (Action.APPROVE, Actor(Role.SUPERVISOR, supervisor))]:
        cases.apply_action(ctx, case_id=case.case_id, action=action, actor=actor)
    with db.sessions() as s:
        rounds = s.exec(select(CaseFeedback).where(CaseFeedback.person_id == reporter)
                        .order_by(CaseFeedback.id)).all()
    assert len(rounds) == 2 and rounds[1].closed_at > rounds[0].closed_at  # one question per closure
    old = feedback.skip_comment(ctx, feedback_id=rounds[0].id, person_id=reporter, reply_to=ReplyTo(9013))
    assert (old.case_status, old.can_reopen, old.blocker) == (Status.CLOSED, False, feedback.ReopenBlocker.NOT_CLOSED)
    assert feedback.skip_comment(ctx, feedback_id=rounds[1].id, person_id=reporter, reply_to=ReplyTo(9013)).can_reopen


def test_staff_cannot_delete_their_account_from_the_chat(ctx) -> None:
    with transaction(ctx.sessions) as s:
        staff = Person(telegram_user_id=9017, roles=["worker"], created_at=ctx.clock.now())
        s.add(staff)
        s.flush()
        staff_id = staff.id
    with pytest.raises(residents.StaffAccount):
        residents.delete_account(ctx, person_id=staff_id, reply_to=ReplyTo(9017))


def test_originals_are_kept_only_within_retention(ctx, db, clock) -> None:
    ctx.settings = ctx.settings.model_copy(update={"photo_original_retention_days": 30})
    person = resident(ctx, 9018)
    done = reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9018), photos=[jpeg_with_gps()])
    with db.sessions() as s:
        photo = s.exec(select(Photo).where(Photo.case_id == done.case_id)).one()
    original = ctx.settings.data_dir / photo.original_path
    assert original.read_bytes() == jpeg_with_gps()  # the original, GPS and all, kept for 30 days
    clock.advance(days=29)
    assert reporting.purge_originals(ctx) == 0 and original.exists()
    clock.advance(days=2)
    assert reporting.purge_originals(ctx) == 1 and not original.exists()
    assert (ctx.settings.data_dir / photo.path).exists()  # the clean copy stays


def test_masking_never_shows_name_or_full_phone() -> None:
    from onegrid.i18n import gettext_for

    p = Person(id=42, display_name="李雷", username="lilei", phone="+86 138-1234-1234", roles=["resident"])
    label = reporter_label(p, gettext_for("en"))
    assert label == "resident 138****1234"
    assert "李" not in label and "lilei" not in label
    assert reporter_label(Person(id=42, roles=[]), gettext_for("zh_CN")) == "居民 R000042"


def test_a_refused_submission_leaves_no_original_behind(ctx, db) -> None:
    ctx.settings = ctx.settings.model_copy(update={"photo_original_retention_days": 30, "report_limit_per_hour": 1})
    person = resident(ctx, 9019)
    reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9019), photos=[jpeg_with_gps(1)])
    with pytest.raises(residents.ReportLimitReached):
        reporting.submit_report(ctx, person_id=person, draft=draft(ctx, 9019), photos=[jpeg_with_gps(2)])
    originals = sorted(p.name for p in (ctx.settings.data_dir / "originals").rglob("*") if p.is_file())
    with db.sessions() as s:
        kept = [p.original_path.rsplit("/", 1)[1] for p in s.exec(select(Photo))]
    assert originals == kept and len(kept) == 1  # only the accepted report's original, GPS and all


def test_closure_asks_each_follower_but_the_closer_through_feedback_requested(ctx, db) -> None:
    reporter, follower = resident(ctx, 9020), resident(ctx, 9021)
    worker, supervisor = resident(ctx, 9022), resident(ctx, 9023)
    asked: list[FeedbackRequested] = []
    ctx.bus = EventBus(merge_tables([event_table(), {FeedbackRequested: [lambda s, c, e: asked.append(e)]}]))
    case = reporting.submit_report(ctx, person_id=reporter, draft=draft(ctx, 9020), photos=[jpeg_with_gps()])
    reporting.follow_case(ctx, person_id=follower, draft=draft(ctx, 9021, photos=0), case_id=case.case_id, photos=[])
    for action, actor in [(Action.DISPATCH, Actor(Role.SYSTEM)), (Action.ACCEPT, Actor(Role.WORKER, worker)),
                          (Action.COMPLETE, Actor(Role.WORKER, worker))]:
        cases.apply_action(ctx, case_id=case.case_id, action=action, actor=actor)
    assert asked == []
    cases.apply_action(ctx, case_id=case.case_id, action=Action.APPROVE, actor=Actor(Role.SUPERVISOR, supervisor))
    with db.sessions() as s:
        rows = s.exec(select(CaseFeedback).order_by(CaseFeedback.id)).all()
        question = s.exec(select(Notification).where(Notification.chat_id == 9021)
                          .order_by(Notification.id.desc())).first()
    assert asked == [FeedbackRequested(feedback_id=r.id, case_id=case.case_id, number=case.number,
                                       person_id=r.person_id) for r in rows]
    assert [r.person_id for r in rows] == [reporter, follower]
    assert question.payload["text"].startswith(f"Is the problem of case {case.number}")
    assert question.payload["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == f"fb:{rows[1].id}:y:0"
