"""The task, offer, completion and spot-check tables: every (status, action) pair, and a property test.

The expectations are written out by hand from how the work flows (an offer goes out, the first
Accept wins, proof is judged ...), not read from models/work_lifecycles.py, so that a wrong edit
to a table fails here instead of being mirrored.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.state_table import IllegalStep
from models.supervision import SpotCheckStatus
from models.work import OPEN_TASK_STATUSES, CompletionStatus, OfferStatus, TaskStatus
from models.work_lifecycles import (
    COMPLETIONS,
    CREATE,
    INITIAL,
    OFFERS,
    SPOT_CHECKS,
    TASKS,
    CompletionAction,
    OfferAction,
    SpotCheckAction,
    TaskAction,
    guard,
    initial,
    terminal,
)

T, TA = TaskStatus, TaskAction
O, OA = OfferStatus, OfferAction
C, CA = CompletionStatus, CompletionAction
K, KA = SpotCheckStatus, SpotCheckAction

# ---- (status, action) -> status, for every legal pair; every pair not listed must raise ----

EXPECTED_TASKS = {
    (T.WAITING, TA.OFFER): T.OFFERED,
    (T.OFFERED, TA.OFFER): T.OFFERED,  # the last offer was declined or withdrawn: offer to others
    (T.WAITING, TA.WAIT): T.WAITING,
    (T.OFFERED, TA.WAIT): T.WAITING,
    (T.WAITING, TA.ASSIGN): T.ACCEPTED,
    (T.OFFERED, TA.ACCEPT): T.ACCEPTED,
    (T.ACCEPTED, TA.RETURN): T.WAITING,
    (T.ACCEPTED, TA.WITHDRAW): T.WAITING,
    (T.WAITING, TA.SHELVE): T.WAITING,
    (T.OFFERED, TA.SHELVE): T.WAITING,
    (T.ACCEPTED, TA.SHELVE): T.WAITING,
    (T.WAITING, TA.REASSIGN): T.OFFERED,
    (T.OFFERED, TA.REASSIGN): T.OFFERED,
    (T.ACCEPTED, TA.REASSIGN): T.OFFERED,
    (T.WAITING, TA.TAKE_OVER): T.ACCEPTED,
    (T.OFFERED, TA.TAKE_OVER): T.ACCEPTED,
    (T.ACCEPTED, TA.TAKE_OVER): T.ACCEPTED,
    (T.ACCEPTED, TA.SUBMIT): T.DONE,
    (T.DONE, TA.REWORK): T.ACCEPTED,
    (T.WAITING, TA.CANCEL): T.CANCELLED,
    (T.OFFERED, TA.CANCEL): T.CANCELLED,
    (T.ACCEPTED, TA.CANCEL): T.CANCELLED,
}

EXPECTED_OFFERS = {
    (O.OPEN, OA.ACCEPT): O.ACCEPTED,
    (O.OPEN, OA.LOSE): O.TAKEN,
    (O.OPEN, OA.DECLINE): O.DECLINED,
    (O.ACCEPTED, OA.RETURN): O.RETURNED,
    (O.OPEN, OA.WITHDRAW): O.WITHDRAWN,
    (O.ACCEPTED, OA.WITHDRAW): O.WITHDRAWN,
}

EXPECTED_COMPLETIONS = {
    (C.DRAFT, CA.SUBMIT): C.SUBMITTED,
    (C.SUBMITTED, CA.APPROVE): C.APPROVED,
    (C.SUBMITTED, CA.REJECT): C.REJECTED,
    (C.DRAFT, CA.ABANDON): C.ABANDONED,
}

EXPECTED_SPOT_CHECKS = {
    (K.PENDING, KA.PASS): K.PASSED,
    (K.PENDING, KA.FAIL): K.FAILED,
    (K.PENDING, KA.EXPIRE): K.SILENT,
}

EXPECTED_INITIAL = {
    "task": {T.WAITING},
    "offer": {O.OPEN, O.ACCEPTED},
    "completion": {C.DRAFT},
    "spot_check": {K.PENDING, K.NOBODY},
}

EXPECTED_TERMINAL = {
    "task": {T.CANCELLED},  # DONE is not: a rejected proof sends it back
    "offer": {O.TAKEN, O.DECLINED, O.RETURNED, O.WITHDRAWN},
    "completion": {C.APPROVED, C.REJECTED, C.ABANDONED},
    "spot_check": {K.PASSED, K.FAILED, K.SILENT, K.NOBODY},
}

CASES = [
    pytest.param(TASKS, TaskStatus, TaskAction, EXPECTED_TASKS, id="task"),
    pytest.param(OFFERS, OfferStatus, OfferAction, EXPECTED_OFFERS, id="offer"),
    pytest.param(COMPLETIONS, CompletionStatus, CompletionAction, EXPECTED_COMPLETIONS, id="completion"),
    pytest.param(SPOT_CHECKS, SpotCheckStatus, SpotCheckAction, EXPECTED_SPOT_CHECKS, id="spot_check"),
]


@pytest.mark.parametrize(("table", "statuses", "actions", "expected"), CASES)
def test_every_status_action_pair(table, statuses, actions, expected):
    for status in statuses:
        for action in actions:
            if (status, action) in expected:
                assert table.allowed(status, action), (status, action)
                assert table.step(status, action) is expected[(status, action)], (status, action)
            else:
                assert not table.allowed(status, action), (status, action)
                with pytest.raises(IllegalStep) as caught:
                    table.step(status, action)
                assert (caught.value.table, caught.value.status, caught.value.action) == (table.name, status, action)


@pytest.mark.parametrize(("table", "statuses", "actions", "expected"), CASES)
def test_every_action_is_in_the_table(table, statuses, actions, expected):
    assert set(table.actions) == set(actions)
    assert {a for _, a in expected} == set(actions)


@pytest.mark.parametrize(("table", "statuses", "actions", "expected"), CASES)
def test_guard_is_what_a_compare_and_set_update_needs(table, statuses, actions, expected):
    for action in actions:
        sources, target = guard(table, action)
        assert sources == {s for (s, a) in expected if a is action}
        assert {expected[(s, action)] for s in sources} == {target}


@pytest.mark.parametrize(("table", "statuses", "actions", "expected"), CASES)
def test_terminal_statuses(table, statuses, actions, expected):
    assert terminal(table, statuses) == EXPECTED_TERMINAL[table.name]


@pytest.mark.parametrize(("table", "statuses", "actions", "expected"), CASES)
def test_rows_are_created_only_in_their_initial_statuses(table, statuses, actions, expected):
    assert INITIAL[table.name] == EXPECTED_INITIAL[table.name]
    for status in statuses:
        if status in EXPECTED_INITIAL[table.name]:
            assert initial(table, status) is status
        else:
            with pytest.raises(IllegalStep) as caught:
                initial(table, status)
            assert caught.value.action == CREATE


def test_open_tasks_are_the_ones_a_case_ending_cancels():
    assert TASKS.sources(TA.CANCEL) == set(OPEN_TASK_STATUSES)


def test_a_task_goes_round_offer_accept_submit_rework_submit():
    status = initial(TASKS, T.WAITING)
    for action, after in [(TA.OFFER, T.OFFERED), (TA.ACCEPT, T.ACCEPTED), (TA.SUBMIT, T.DONE),
                          (TA.REWORK, T.ACCEPTED), (TA.SUBMIT, T.DONE)]:
        status = TASKS.step(status, action)
        assert status is after


def test_an_offer_accepted_elsewhere_cannot_be_accepted():
    assert OFFERS.step(O.OPEN, OA.LOSE) is O.TAKEN
    with pytest.raises(IllegalStep, match="offer: accept is not allowed from taken"):
        OFFERS.step(O.TAKEN, OA.ACCEPT)


# ---- property: any sequence of actions, legal or not, follows the written table ----

TABLES = {
    "task": (TASKS, TaskStatus, TaskAction, EXPECTED_TASKS),
    "offer": (OFFERS, OfferStatus, OfferAction, EXPECTED_OFFERS),
    "completion": (COMPLETIONS, CompletionStatus, CompletionAction, EXPECTED_COMPLETIONS),
    "spot_check": (SPOT_CHECKS, SpotCheckStatus, SpotCheckAction, EXPECTED_SPOT_CHECKS),
}


@st.composite
def walks(draw):
    name = draw(st.sampled_from(sorted(TABLES)))
    _, statuses, actions, _ = TABLES[name]
    start = draw(st.sampled_from(sorted(EXPECTED_INITIAL[name])))
    steps = draw(st.lists(st.sampled_from(list(actions)), max_size=30))
    return name, start, steps


@given(walks())
def test_random_action_sequences_stay_in_the_table(walk):
    name, status, steps = walk
    table, statuses, actions, expected = TABLES[name]
    reachable = set(EXPECTED_INITIAL[name]) | set(expected.values())
    for action in steps:
        if status in EXPECTED_TERMINAL[name]:
            # A terminal status has no way out, whatever is tried.
            assert not any(table.allowed(status, a) for a in actions)
        if (status, action) in expected:
            after = table.step(status, action)
            assert after is expected[(status, action)]
            status = after
        else:
            with pytest.raises(IllegalStep):
                table.step(status, action)
        assert status in reachable
        assert isinstance(status, statuses)
