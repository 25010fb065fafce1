"""The stuck-case invariant (tests/work_invariants.py): it catches what the old API path did, and no mix of
office actions, workers' answers and supervisors' decisions breaks it any more (Hypothesis), on both databases.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import NoResultFound
from sqlmodel import select

from models.lifecycle import Action, Actor, LifecycleError, Role, Status
from models.tables import Case, Person
from models.work import OfferStatus, WorkOffer
from services import case_ending, cases, extensions, office_actions, verification, work
from services.cases import StaleCase
from services.context import ServiceContext
from services.supervision_access import SupervisionError
from tests.case_states import RES_TG, SUP_TG, W1_TG, W2_TG, Scene, accept, build, complete, held_task, set_on_duty, version
from tests.work_invariants import assert_no_stuck_cases, check_work_invariants, violations  # noqa: F401
from tests.worker_support import make_ctx, report

OFFICE = Actor(Role.DISPATCHER)
SUPERVISOR_KEY = Actor(Role.SUPERVISOR)


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:  # noqa: ANN001
    return make_ctx(db.sessions, clock, tmp_path)


@pytest.mark.stuck_cases_expected
def test_the_old_api_reassign_left_a_stuck_case_and_the_checker_names_it(ctx, db, clock) -> None:  # noqa: ANN001
    """What `POST /cases/{id}/actions` did before: the status alone, with no work layer."""
    scene = build(ctx, db, clock, Status.IN_PROGRESS)
    assert violations(db.sessions) == []
    cases.apply_action(ctx, case_id=scene.case_id, action=Action.REASSIGN, actor=OFFICE, note="old path")
    found = violations(db.sessions)
    assert any("held although the case is dispatched" in line for line in found), found
    with pytest.raises(work.TaskNotOpen):  # and the worker who still holds it cannot finish it
        complete(ctx, db, clock, scene.case_id, scene.w1)


@pytest.mark.stuck_cases_expected
def test_the_old_api_cancel_left_the_order_open_and_the_checker_names_it(ctx, db, clock) -> None:  # noqa: ANN001
    scene = build(ctx, db, clock, Status.DISPATCHED)
    cases.apply_action(ctx, case_id=scene.case_id, action=Action.CANCEL, actor=OFFICE, note="old path")
    found = violations(db.sessions)
    assert any("still offered or held although the case is cancelled" in line for line in found), found
    assert any("offer(s) still open" in line for line in found), found


def test_the_same_actions_through_the_work_layer_leave_nothing_stuck(ctx, db, clock) -> None:  # noqa: ANN001
    scene = build(ctx, db, clock, Status.IN_PROGRESS)
    office_actions.act(ctx, case_id=scene.case_id, action=Action.REASSIGN, actor=OFFICE, note="new path")
    assert_no_stuck_cases(db.sessions)
    accept(ctx, db, scene.case_id, scene.w2)
    assert complete(ctx, db, clock, scene.case_id, scene.w2).outcome == work.LocationOutcome.SUBMITTED
    other = report(ctx)
    office_actions.act(ctx, case_id=other.id, action=Action.CANCEL, actor=OFFICE, note="new path")
    assert_no_stuck_cases(db.sessions)


# -- any mix of steps -------------------------------------------------------------------------------

STEPS = ["accept_w1", "accept_w2", "return_w1", "complete_w1", "complete_w2", "approve", "reject", "w2_off",
         *[f"office_{a.value}" for a in (Action.REASSIGN, Action.CANCEL, Action.SHELVE, Action.UNSHELVE,
                                         Action.DISPATCH, Action.REOPEN, Action.MERGE)]]
EXPECTED_REFUSALS = (work.WorkError, LifecycleError, StaleCase, office_actions.NobodyAvailable,
                     case_ending.EndingError, verification.VerificationError, SupervisionError,
                     extensions.ExtensionError, LookupError, NoResultFound)


def _step(ctx, db, clock, scene, other_id: int, step: str, seed: int) -> None:  # noqa: ANN001
    case_id = scene.case_id
    if step.startswith("accept_"):
        worker = scene.w1 if step.endswith("w1") else scene.w2
        with db.sessions() as s:
            offer = s.exec(select(WorkOffer.id).where(WorkOffer.case_id == case_id, WorkOffer.worker_id == worker,
                                                      WorkOffer.status == OfferStatus.OPEN)).first()
        if offer is None:
            raise LookupError("no open offer")
        work.accept_offer(ctx, offer_id=offer, worker_id=worker)
    elif step == "return_w1":
        work.return_order(ctx, worker_id=scene.w1, reason="not ours",
                          task_id=_held(db, case_id, scene.w1))
    elif step.startswith("complete_"):
        complete(ctx, db, clock, case_id, scene.w1 if step.endswith("w1") else scene.w2, seed=seed)
    elif step == "approve":
        verification.approve(ctx, case_id=case_id, supervisor_id=scene.supervisor,
                             expected_version=version(db, case_id))
    elif step == "reject":
        verification.reject(ctx, case_id=case_id, supervisor_id=scene.supervisor, reason="redo",
                            expected_version=version(db, case_id))
    elif step == "w2_off":
        work.set_duty(ctx, person_id=scene.w2, on_duty=False)
    else:
        action = Action(step.removeprefix("office_"))
        actor = SUPERVISOR_KEY if action in (Action.SHELVE, Action.UNSHELVE, Action.REOPEN) else OFFICE
        office_actions.act(ctx, case_id=case_id, action=action, actor=actor, note="by hypothesis",
                           merge_into_id=other_id)


def _held(db, case_id: int, worker_id: int) -> int:  # noqa: ANN001
    try:
        return held_task(db, case_id, worker_id)
    except Exception as exc:  # noqa: BLE001 - "holds nothing" is a refusal like any other here
        raise LookupError("holds nothing") from exc


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=7))
def test_no_mix_of_steps_leaves_a_case_stuck(ctx, db, clock, steps: list[str]) -> None:  # noqa: ANN001
    with db.sessions() as s:  # the people once per store; every example reports its own two cases
        known = s.exec(select(Case.id)).first() is not None
    if not known:
        build(ctx, db, clock, Status.DISPATCHED)
    with db.sessions() as s:
        ids = {p.telegram_user_id: p.id for p in s.exec(select(Person)).all()}
    for person_id in (ids[W1_TG], ids[W2_TG]):
        set_on_duty(db, person_id)
    case = report(ctx, reporter_id=ids[RES_TG])
    other = report(ctx, reporter_id=ids[RES_TG])
    scene = Scene(case.id, case.number, ids[W1_TG], ids[W2_TG], ids[SUP_TG], ids[RES_TG])
    for index, step in enumerate(steps):
        try:
            _step(ctx, db, clock, scene, other.id, step, seed=index + 10 * len(steps))
        except EXPECTED_REFUSALS:
            pass
        found = violations(db.sessions)
        assert not found, (steps[:index + 1], found)
