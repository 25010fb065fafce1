"""Supervision services publish their events, with the right fields, through a real EventBus (on SQLite and
PostgreSQL): the table records every event next to the Telegram renderers, which still queue their rows."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.events import Event
from models.events.supervision import (
    CaseTakenOver,
    ExtensionRefused,
    ExtensionRequested,
    TopicBound,
    TopicUnbound,
)
from models.events.work import OrderWithdrawn, RetractReason
from models.tables import Case
from models.work import CaseTask
from onegrid.wiring import event_table
from services import extensions, takeover, topics
from services.bus import EventBus, merge_tables
from tests.store.test_escalation_actions import GROUP, SUP, THREAD, WORKER, accepted_case
from tests.store.test_escalation_actions import ctx as ctx  # noqa: F401 - the fixture with the world and people
from tests.worker_support import STREET, queued
from tests.work_invariants import check_work_invariants  # noqa: F401  (autouse: no stuck case after each test)

RECORDED = (ExtensionRequested, ExtensionRefused, CaseTakenOver, OrderWithdrawn, TopicBound, TopicUnbound)


@pytest.fixture
def published(ctx):  # noqa: F811
    """Every recorded event published through `ctx`, in order; the real renderers still run first."""
    seen: list[Event] = []
    ctx.bus = EventBus(merge_tables([event_table(),
                                     {kind: [lambda session, c, event: seen.append(event)] for kind in RECORDED}]))
    return seen


def test_extension_request_and_refusal_publish_their_events(ctx, db, published) -> None:  # noqa: F811
    case = accepted_case(ctx, db)
    extensions.request_extension(ctx, case_id=case.id, worker_id=ctx.ids["worker"], reason="waiting  for a part",
                                 minutes=240)
    extensions.refuse_extension(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"], reason="the part is here")
    with db.sessions() as s:
        due = s.get(Case, case.id).handle_due_at
    assert published == [
        ExtensionRequested(case_id=case.id, case_number=case.number, worker_id=ctx.ids["worker"], minutes=240,
                           reason="waiting for a part"),
        ExtensionRefused(case_id=case.id, case_number=case.number, supervisor_id=ctx.ids["sup"],
                         requester_id=ctx.ids["worker"], reason="the part is here", due_at=due),
    ]
    # Rendered in the same transactions: the card to the supervisor, the refusal to the worker, the confirmation.
    assert any("asks for more time" in n.payload["text"] for n in queued(db.sessions, SUP, "sendMessage"))
    assert any("extension refused" in n.payload["text"] for n in queued(db.sessions, WORKER, "sendMessage"))
    assert queued(db.sessions, SUP, "sendMessage")[-1].payload["text"] == (
        f"Extension of case {case.number} refused; the worker was told.")


def test_take_over_publishes_the_withdrawal_and_the_tasks_now_held(ctx, db, published) -> None:  # noqa: F811
    case = accepted_case(ctx, db)
    takeover.take_over(ctx, case_id=case.id, supervisor_id=ctx.ids["sup"])
    with db.sessions() as s:
        task_ids = tuple(s.exec(select(CaseTask.id).where(CaseTask.case_id == case.id).order_by(CaseTask.id)).all())
    assert published == [
        OrderWithdrawn(case_id=case.id, case_number=case.number, worker_id=ctx.ids["worker"],
                       reason=RetractReason.TAKEN_OVER),
        CaseTakenOver(case_id=case.id, case_number=case.number, supervisor_id=ctx.ids["sup"], task_ids=task_ids),
    ]


def test_topic_binding_publishes_the_area_and_the_claimed_group(ctx, db, published) -> None:  # noqa: F811
    topics.bind_topic(ctx, supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=THREAD)
    topics.unbind_topic(ctx, supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=THREAD)
    assert published == [
        TopicBound(supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=THREAD, area_code=STREET,
                   claimed_area_code=STREET),
        TopicUnbound(supervisor_id=ctx.ids["sup"], chat_id=GROUP, message_thread_id=THREAD, area_codes=(STREET,)),
    ]
