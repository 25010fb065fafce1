"""Every lifecycle action the API takes, from every status the lifecycle lets an API key take it, on both
databases: the answer, the rows, and what the workers, supervisors and residents are sent.

The (status, action) pairs come from the lifecycle table itself (`models.lifecycle.TRANSITIONS` for the
API's actions and the roles a key may act as), so a new rule gets a test here. After every test the
stuck-case invariant (tests/work_invariants.py) is checked on the store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import select

from api.schemas import ApiAction
from models.lifecycle import TRANSITIONS, Action, Actor, Role, Status
from models.resident import CaseFollower
from models.tables import Case, CaseEvent, Notification
from models.work import CaseTask, Completion, OfferStatus, TaskStatus, WorkOffer
from services import office_actions, work
from tests.api.conftest import STREET_A, STREET_B
from tests.case_states import (
    RES_TG,
    SUP_TG,
    W1_TG,
    W2_TG,
    Scene,
    accept,
    build,
    complete,
    held_task,
    set_on_duty,
    version,
)
from tests.work_invariants import assert_no_stuck_cases, check_work_invariants  # noqa: F401
from tests.worker_support import add_person, report

ROLES = (Role.DISPATCHER, Role.SUPERVISOR)
API_PAIRS = sorted(
    {(status, action) for (status, action), rule in TRANSITIONS.items()
     if action.value in {a.value for a in ApiAction} and any(r in rule.roles for r in ROLES)},
    key=lambda p: (p[0].value, p[1].value))
NOTE = "checked on site"


def role_for(status: Status, action: Action) -> Role:
    roles = TRANSITIONS[(status, action)].roles
    return Role.DISPATCHER if Role.DISPATCHER in roles else Role.SUPERVISOR


@pytest.fixture
def keys(api) -> dict[Role, str]:  # noqa: ANN001
    api.key("office_a", ["read", "write"], STREET_A, acts_as="dispatcher")
    api.key("sup_a", ["read", "write"], STREET_A, acts_as="supervisor")
    return {Role.DISPATCHER: "office_a", Role.SUPERVISOR: "sup_a"}


def texts_to(api, chat_id: int, case_id: int | None = None) -> list[str]:  # noqa: ANN001
    """Every text or caption queued for `chat_id` (about `case_id`), oldest first."""
    with api.ctx.sessions() as s:
        query = select(Notification).where(Notification.chat_id == chat_id).order_by(Notification.id)
        if case_id is not None:
            query = query.where(Notification.case_id == case_id)
        rows = s.exec(query).all()
    return [r.payload.get("text") or r.payload.get("caption") or "" for r in rows]


def offers(api, case_id: int) -> dict[int, list[str]]:  # noqa: ANN001
    with api.ctx.sessions() as s:
        out: dict[int, list[str]] = {}
        for o in s.exec(select(WorkOffer).where(WorkOffer.case_id == case_id).order_by(WorkOffer.id)).all():
            out.setdefault(o.worker_id, []).append(o.status)
        return out


def tasks(api, case_id: int) -> list[tuple[str, int | None]]:  # noqa: ANN001
    with api.ctx.sessions() as s:
        return [(t.status, t.assignee_id) for t in s.exec(select(CaseTask).where(CaseTask.case_id == case_id)
                                                           .order_by(CaseTask.id)).all()]


async def scene_in(api, status: Status) -> Scene:  # noqa: ANN001
    return await asyncio.to_thread(build, api.ctx, _Db(api), api.clock, status)


class _Db:
    """The API app's store, shaped as the `db` fixture the scene builders take."""

    def __init__(self, api) -> None:  # noqa: ANN001
        self.sessions = api.ctx.sessions


async def act(api, key: str, case_id: int, action: str, **body: Any):  # noqa: ANN001, ANN201
    return await api.client.post(f"/api/v1/cases/{case_id}/actions", json={"action": action, **body},
                                 headers=api.auth(key))


# -- every allowed (status, action) ------------------------------------------------------------------


@pytest.mark.parametrize(("status", "action"), API_PAIRS, ids=[f"{s.value}-{a.value}" for s, a in API_PAIRS])
async def test_every_api_action_from_every_status_it_is_allowed_in(api, keys, status: Status, action: Action) -> None:
    scene = await scene_in(api, status)
    body: dict[str, Any] = {"note": NOTE, "expected_version": await asyncio.to_thread(version, _Db(api), scene.case_id)}
    target = None
    if action is Action.MERGE:
        target = await scene_in_other(api)
        body["merge_into_id"] = target
    before_w1 = len(texts_to(api, W1_TG, scene.case_id))
    answer = await act(api, keys[role_for(status, action)], scene.case_id, action.value, **body)
    assert answer.status_code == 200, answer.text
    # Registered or taken off the shelf, a case is offered at once to the worker on duty: it answers dispatched.
    expected = Status.DISPATCHED if action in (Action.REGISTER, Action.UNSHELVE) else TRANSITIONS[(status, action)].to
    assert answer.json()["status"] == expected.value
    with api.ctx.sessions() as s:
        case = s.get(Case, scene.case_id)
        last = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id.desc())).first()
    assert case.status == expected
    assert (last.action, last.to_status) in {(action.value, expected.value), (Action.DISPATCH.value, "dispatched"),
                                             (Action.MERGE.value, expected.value)}
    await asyncio.to_thread(CHECKS.get(action, lambda *a: None), api, scene, status, before_w1, target)
    assert_no_stuck_cases(api.ctx.sessions)


def check_reassign(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    # The worker who had it is told; the other worker of the grid gets the order, and can finish it.
    assert offers(api, scene.case_id)[scene.w2][-1] == OfferStatus.OPEN
    assert all(s != OfferStatus.OPEN and s != OfferStatus.ACCEPTED for s in offers(api, scene.case_id)[scene.w1])
    told = texts_to(api, W1_TG, scene.case_id)[before_w1:]
    assert any("reassigned" in t for t in told), told
    with api.ctx.sessions() as s:  # W1 presses Complete on the order they had: refused, politely
        task_id = s.exec(select(CaseTask.id).where(CaseTask.case_id == scene.case_id)).first()
    with pytest.raises((work.NotYourOrder, work.TaskNotOpen)):
        work.start_completion(api.ctx, task_id=task_id, worker_id=scene.w1)
    accept(api.ctx, _Db(api), scene.case_id, scene.w2)
    result = complete(api.ctx, _Db(api), api.clock, scene.case_id, scene.w2, seed=6)
    assert result.outcome == work.LocationOutcome.SUBMITTED
    with api.ctx.sessions() as s:
        assert s.get(Case, scene.case_id).status == Status.AWAITING_VERIFICATION


def check_dispatch(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    # The worker now on duty got the order (it had waited for somebody).
    assert OfferStatus.OPEN in offers(api, scene.case_id)[scene.w2]
    assert any(scene.number in t for t in texts_to(api, W2_TG, scene.case_id))


def check_ended(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    # Nothing stays offered or held; a worker who had the order sees it is no longer open.
    assert all(t in (TaskStatus.CANCELLED, TaskStatus.DONE) for t, _a in tasks(api, scene.case_id))
    assert not any(OfferStatus.OPEN in v or OfferStatus.ACCEPTED in v for v in offers(api, scene.case_id).values())
    if status is Status.DISPATCHED:
        assert any("no longer open" in t for t in texts_to(api, W1_TG, scene.case_id)[before_w1:])


def check_cancel(api, scene: Scene, status: Status, before_w1: int, target) -> None:  # noqa: ANN001
    check_ended(api, scene, status, before_w1, target)
    if status is not Status.REPORTED:  # the reporter follows it from the report flow on
        assert any("cancelled" in t and NOTE in t for t in texts_to(api, RES_TG, scene.case_id)), \
            texts_to(api, RES_TG)


def check_merge(api, scene: Scene, status: Status, before_w1: int, target) -> None:  # noqa: ANN001
    check_ended(api, scene, status, before_w1, target)
    with api.ctx.sessions() as s:
        dup, survivor = s.get(Case, scene.case_id), s.get(Case, target)
        followers = set(s.exec(select(CaseFollower.person_id).where(CaseFollower.case_id == target)).all())
        trail = s.exec(select(CaseEvent.note).where(CaseEvent.case_id == target, CaseEvent.action == "merge")).all()
    assert dup.merged_into_id == target
    assert survivor.report_count == 1 + dup.report_count
    assert any(scene.number in (n or "") for n in trail)
    if status is not Status.REPORTED:
        assert scene.resident in followers
        assert any(survivor.number in t and scene.number in t for t in texts_to(api, RES_TG)), texts_to(api, RES_TG)


def check_shelve(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    assert all(t == TaskStatus.WAITING and a is None for t, a in tasks(api, scene.case_id))
    if status in (Status.DISPATCHED, Status.IN_PROGRESS):
        assert any("on hold" in t for t in texts_to(api, W1_TG, scene.case_id)[before_w1:])


def check_unshelve(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    assert any(OfferStatus.OPEN in v for v in offers(api, scene.case_id).values())


def check_rework(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    # The worker who did it holds it again, is told why, and can complete it again.
    assert tasks(api, scene.case_id) == [(TaskStatus.ACCEPTED, scene.w1)]
    assert any(NOTE in t for t in texts_to(api, W1_TG, scene.case_id)[before_w1:])
    result = complete(api.ctx, _Db(api), api.clock, scene.case_id, scene.w1, seed=7)
    assert result.outcome == work.LocationOutcome.SUBMITTED


def check_approve(api, scene: Scene, status: Status, before_w1: int, _target) -> None:  # noqa: ANN001
    with api.ctx.sessions() as s:
        assert {c.status for c in s.exec(select(Completion).where(Completion.case_id == scene.case_id))} == {"approved"}
    assert any("closed" in t for t in texts_to(api, W1_TG, scene.case_id)[before_w1:])
    assert any("approved" in t for t in texts_to(api, SUP_TG, scene.case_id))  # the proof card says so


CHECKS = {
    Action.REASSIGN: check_reassign, Action.DISPATCH: check_dispatch, Action.REGISTER: check_dispatch,
    Action.CANCEL: check_cancel, Action.MERGE: check_merge, Action.SHELVE: check_shelve,
    Action.UNSHELVE: check_unshelve, Action.REOPEN: check_rework, Action.REJECT: check_rework,
    Action.APPROVE: check_approve,
}


async def scene_in_other(api) -> int:  # noqa: ANN001
    """An open case of the same grid, reported by another resident: the survivor of a merge."""
    def make() -> int:
        other = add_person(api.ctx.sessions, api.clock.now(), telegram_user_id=7399, roles=["resident"])
        return report(api.ctx, reporter_id=other, description="the same garbage").id

    return await asyncio.to_thread(make)


# -- refusals -----------------------------------------------------------------------------------------


async def test_an_in_progress_case_reassigned_by_api_can_still_be_finished(api, keys) -> None:
    """The old bug: API reassign left the case dispatched to nobody, and its holder's Complete refused."""
    scene = await scene_in(api, Status.IN_PROGRESS)
    answer = await act(api, keys[Role.DISPATCHER], scene.case_id, "reassign", note="worker is ill")
    assert answer.status_code == 200 and answer.json()["status"] == "dispatched"
    assert answer.json()["assignee"] is None
    await asyncio.to_thread(check_reassign, api, scene, Status.IN_PROGRESS, 0, None)


async def test_reassign_or_dispatch_with_nobody_on_duty_changes_nothing(api, keys) -> None:
    scene = await scene_in(api, Status.IN_PROGRESS)
    await asyncio.to_thread(set_on_duty, _Db(api), scene.w2, False)
    await asyncio.to_thread(set_on_duty, _Db(api), scene.w1, False)
    before = await asyncio.to_thread(version, _Db(api), scene.case_id)
    answer = await act(api, keys[Role.DISPATCHER], scene.case_id, "reassign")
    assert answer.status_code == 409 and answer.json()["code"] == "nobody_available", answer.text
    assert await asyncio.to_thread(version, _Db(api), scene.case_id) == before
    assert tasks(api, scene.case_id) == [(TaskStatus.ACCEPTED, scene.w1)]
    # W1 still holds it and can finish it.
    assert held_task(_Db(api), scene.case_id, scene.w1)


@pytest.mark.parametrize(("into", "code"), [("self", 422), ("closed", 422), ("other_street", 422), (None, 422)])
async def test_merge_refuses_a_bad_surviving_case_and_changes_nothing(api, keys, into, code) -> None:  # noqa: ANN001
    scene = await scene_in(api, Status.DISPATCHED)
    def target() -> int | None:
        if into == "self":
            return scene.case_id
        if into == "other_street":
            return report(api.ctx, grid="SH-HP-02-001").id
        if into == "closed":  # a case cancelled before: nothing can be merged into it
            case = report(api.ctx)
            office_actions.act(api.ctx, case_id=case.id, action=Action.CANCEL, actor=Actor(Role.DISPATCHER),
                               note="not a problem")
            return case.id
        return None

    target_id = await asyncio.to_thread(target)
    body = {"merge_into_id": target_id} if target_id else {}
    before = await asyncio.to_thread(version, _Db(api), scene.case_id)
    answer = await act(api, keys[Role.DISPATCHER], scene.case_id, "merge", **body)
    assert answer.status_code == code and answer.json()["code"] == "merge_target_invalid", answer.text
    assert await asyncio.to_thread(version, _Db(api), scene.case_id) == before
    assert OfferStatus.OPEN in offers(api, scene.case_id)[scene.w1]


async def test_cancel_without_a_reason_is_refused_and_the_order_stays(api, keys) -> None:
    scene = await scene_in(api, Status.DISPATCHED)
    answer = await act(api, keys[Role.DISPATCHER], scene.case_id, "cancel")
    assert answer.status_code == 422 and answer.json()["code"] == "note_required"
    assert OfferStatus.OPEN in offers(api, scene.case_id)[scene.w1]


async def test_an_action_on_another_streets_case_is_not_found(api, keys) -> None:
    scene = await scene_in(api, Status.DISPATCHED)
    api.key("office_b", ["read", "write"], STREET_B)
    answer = await act(api, "office_b", scene.case_id, "cancel", note="x")
    assert answer.status_code == 404
    assert OfferStatus.OPEN in offers(api, scene.case_id)[scene.w1]
