"""The case lifecycle: the whole (status, action, role) table, the city workflow, and a property test.

Most expectations here are written down independently of `TRANSITIONS` (the happy path, the
terminal statuses, who may never do what, which action leads where, which actions need a
reason), so that a wrong edit to the table fails a test instead of being mirrored by it.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from models.lifecycle import (
    OPEN,
    TERMINAL,
    TRANSITIONS,
    Action,
    Actor,
    CaseFacts,
    ClockWentBackwards,
    IllegalTransition,
    LifecycleError,
    NoteRequired,
    Role,
    RoleNotAllowed,
    SelfVerification,
    Status,
    Transition,
    allowed_actions,
    transition,
)

S, A, R = Status, Action, Role

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)

# Person ids per role, disjoint so that a test can tell who did what.
PEOPLE: dict[Role, tuple[int | None, ...]] = {
    R.RESIDENT: (1, 2, 3),
    R.WORKER: (11, 12, 13),
    R.SUPERVISOR: (21, 22),
    R.DISPATCHER: (31, 32),
    R.SYSTEM: (None,),
}

# ---- Expectations written down from the city workflow, not read from TRANSITIONS ----

EXPECTED_TERMINAL = {S.CLOSED, S.CANCELLED, S.MERGED}

# 发现 → 立案 → 派遣 → 处置 → 核查 → 结案, with the role that normally does each step.
HAPPY_PATH = [
    (A.REGISTER, R.DISPATCHER, S.REGISTERED),
    (A.DISPATCH, R.DISPATCHER, S.DISPATCHED),
    (A.ACCEPT, R.WORKER, S.IN_PROGRESS),
    (A.COMPLETE, R.WORKER, S.AWAITING_VERIFICATION),
    (A.APPROVE, R.SUPERVISOR, S.CLOSED),
]

# Every action leads to one status whatever it starts from.
ACTION_TARGET = {
    A.REGISTER: S.REGISTERED,
    A.DISPATCH: S.DISPATCHED,
    A.REASSIGN: S.DISPATCHED,
    A.ACCEPT: S.IN_PROGRESS,
    A.RETURN: S.RETURNED,
    A.COMPLETE: S.AWAITING_VERIFICATION,
    A.APPROVE: S.CLOSED,
    A.REJECT: S.REWORK,
    A.REQUEST_EXTENSION: S.EXTENSION_REQUESTED,
    A.GRANT_EXTENSION: S.IN_PROGRESS,
    A.REFUSE_EXTENSION: S.IN_PROGRESS,
    A.SHELVE: S.SHELVED,
    A.UNSHELVE: S.REGISTERED,
    A.REOPEN: S.REWORK,
    A.CANCEL: S.CANCELLED,
    A.MERGE: S.MERGED,
    A.CLEAR_AT_SOURCE: S.CLOSED,
}

# Actions that refuse, send back, stop the clock or throw a case away must say why.
NOTE_ACTIONS = {
    A.CANCEL,
    A.RETURN,
    A.SHELVE,
    A.REJECT,
    A.REQUEST_EXTENSION,
    A.REFUSE_EXTENSION,
    A.REOPEN,
    A.CLEAR_AT_SOURCE,
}

# A resident may withdraw their own report until a worker accepts it, and say "not fixed"; nothing else.
RESIDENT_MAY = {(S.REPORTED, A.CANCEL), (S.REGISTERED, A.CANCEL), (S.DISPATCHED, A.CANCEL), (S.CLOSED, A.REOPEN)}
# A worker handles cases; they never judge work, grant time, or route cases.
WORKER_MAY_ONLY = {A.ACCEPT, A.RETURN, A.COMPLETE, A.REQUEST_EXTENSION}
# Judging work and extensions is supervision.
SUPERVISION_ONLY = {A.APPROVE, A.REJECT, A.GRANT_EXTENSION, A.REFUSE_EXTENSION}


def actor(role: Role, index: int = 0) -> Actor:
    return Actor(role, PEOPLE[role][index % len(PEOPLE[role])])


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def legal(status: Status, action: Action, role: Role, *, note: str | None = "reason") -> bool:
    """Whether the transition function itself accepts the action (with a note, by a fresh person)."""
    try:
        transition(CaseFacts(status), action, actor(role), at=T0, note=note)
    except LifecycleError:
        return False
    return True


def graph_from_function() -> dict[Status, set[Status]]:
    """Status graph discovered by calling `transition`, not by reading TRANSITIONS."""
    edges: dict[Status, set[Status]] = {s: set() for s in Status}
    for s in Status:
        for a in Action:
            for r in Role:
                try:
                    t = transition(CaseFacts(s), a, actor(r), at=T0, note="reason")
                except LifecycleError:
                    continue
                edges[s].add(t.to_status)
    return edges


def reachable(edges: dict[Status, set[Status]], start: Status) -> set[Status]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in edges[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# ---- The whole table ----

ALL_PAIRS = [(s, a) for s in Status for a in Action]


@pytest.mark.parametrize(("status", "action"), ALL_PAIRS, ids=[f"{s}-{a}" for s, a in ALL_PAIRS])
def test_every_status_action_role(status: Status, action: Action) -> None:
    rule_ = TRANSITIONS.get((status, action))
    facts = CaseFacts(status, last_event_at=at(0))
    for role in Role:
        who = actor(role)
        if rule_ is None:
            with pytest.raises(IllegalTransition) as exc:
                transition(facts, action, who, at=at(1), note="reason")
            assert (exc.value.status, exc.value.action) == (status, action)
            continue
        if role not in rule_.roles:
            with pytest.raises(RoleNotAllowed) as exc:
                transition(facts, action, who, at=at(1), note="reason")
            assert exc.value.role is role
            continue
        if rule_.note_required:
            for missing in (None, "", "   ", "\n\t "):
                with pytest.raises(NoteRequired):
                    transition(facts, action, who, at=at(1), note=missing)
        t = transition(facts, action, who, at=at(1), note="  a reason  ")
        assert isinstance(t, Transition)
        assert (t.from_status, t.to_status, t.action, t.actor) == (status, rule_.to, action, who)
        assert t.to_status is ACTION_TARGET[action], "an action always leads to the same status"
        assert t.facts.status is rule_.to
        assert t.facts.last_event_at == t.at == at(1)
        assert t.note == "a reason", "notes are stored trimmed"
        assert rule_.note_required == (action in NOTE_ACTIONS)


# 自动结案: only the platform, on its source's word, and only before anybody started on the case
# (once a worker holds it, they check on site; awaiting verification, the source's word is an approval).
CLEARABLE_AT_SOURCE = {S.REGISTERED, S.DISPATCHED, S.RETURNED}


def test_only_the_system_clears_at_source_and_only_before_work_started() -> None:
    for s in Status:
        for r in Role:
            assert legal(s, A.CLEAR_AT_SOURCE, r) == (s in CLEARABLE_AT_SOURCE and r is R.SYSTEM), (s, r)


def test_terminal_statuses_are_the_expected_ones() -> None:
    assert set(TERMINAL) == EXPECTED_TERMINAL
    assert set(OPEN) == set(Status) - EXPECTED_TERMINAL - {S.SHELVED}


@pytest.mark.parametrize("status", sorted(EXPECTED_TERMINAL))
def test_terminal_statuses_allow_nothing_but_reopening_a_closed_case(status: Status) -> None:
    for a in Action:
        for r in Role:
            expected = status is S.CLOSED and a is A.REOPEN and r in (R.RESIDENT, R.SUPERVISOR)
            assert legal(status, a, r) == expected, (status, a, r)


def test_happy_path_with_the_expected_roles() -> None:
    facts = CaseFacts(S.REPORTED)
    people = {r: Actor(r, pid) for r, pid in ((R.DISPATCHER, 31), (R.WORKER, 11), (R.SUPERVISOR, 21))}
    for minute, (action, role, expected) in enumerate(HAPPY_PATH):
        t = transition(facts, action, people[role], at=at(minute))
        assert t.to_status is expected
        facts = t.facts
    assert facts == CaseFacts(S.CLOSED, handler_id=11, verifier_id=21, last_event_at=at(len(HAPPY_PATH) - 1))


def test_system_can_run_the_office_steps_and_close_without_a_person() -> None:
    facts = CaseFacts(S.REPORTED)
    steps = [
        (A.REGISTER, R.SYSTEM),
        (A.DISPATCH, R.SYSTEM),
        (A.ACCEPT, R.WORKER),
        (A.COMPLETE, R.WORKER),
        (A.APPROVE, R.SYSTEM),
    ]
    for minute, (action, role) in enumerate(steps):
        facts = transition(facts, action, actor(role), at=at(minute)).facts
    assert facts.status is S.CLOSED and facts.handler_id == 11 and facts.verifier_id is None


def test_side_paths_of_the_city_workflow() -> None:
    w, w2 = Actor(R.WORKER, 11), Actor(R.WORKER, 12)
    sup, disp, res = Actor(R.SUPERVISOR, 21), Actor(R.DISPATCHER, 31), Actor(R.RESIDENT, 1)
    path = [
        (A.REGISTER, disp, None, S.REGISTERED),
        (A.DISPATCH, disp, None, S.DISPATCHED),
        (A.RETURN, w, "not my grid", S.RETURNED),  # 退单
        (A.DISPATCH, disp, None, S.DISPATCHED),
        (A.ACCEPT, w2, None, S.IN_PROGRESS),
        (A.REQUEST_EXTENSION, w2, "waiting for parts", S.EXTENSION_REQUESTED),  # 延期
        (A.GRANT_EXTENSION, sup, None, S.IN_PROGRESS),
        (A.COMPLETE, w2, None, S.AWAITING_VERIFICATION),
        (A.REJECT, sup, "still dirty", S.REWORK),  # 返工
        (A.COMPLETE, w2, None, S.AWAITING_VERIFICATION),
        (A.APPROVE, sup, None, S.CLOSED),
        (A.REOPEN, res, "not fixed", S.REWORK),
        (A.REASSIGN, disp, None, S.DISPATCHED),
        (A.SHELVE, sup, "needs budget", S.SHELVED),  # 挂账
        (A.UNSHELVE, sup, None, S.REGISTERED),
        (A.CANCEL, disp, "invalid", S.CANCELLED),  # 注销
    ]
    facts = CaseFacts(S.REPORTED)
    for minute, (action, who, note, expected) in enumerate(path):
        t = transition(facts, action, who, at=at(minute), note=note)
        assert t.to_status is expected, (action, who)
        facts = t.facts
        if action in (A.RETURN, A.REASSIGN, A.UNSHELVE):
            assert facts.handler_id is None, f"{action} must release the handler"
        if expected is S.REWORK:
            assert facts.verifier_id is None, "rework needs a fresh verification"
    for status in (S.REPORTED, S.REGISTERED, S.DISPATCHED, S.RETURNED):
        assert transition(CaseFacts(status), A.MERGE, disp, at=T0).to_status is S.MERGED


def test_resident_can_never_route_or_judge() -> None:
    for s in Status:
        for a in Action:
            assert legal(s, a, R.RESIDENT) == ((s, a) in RESIDENT_MAY), (s, a)
    for s in Status:
        for a in (A.DISPATCH, A.APPROVE, A.REJECT, A.REGISTER, A.REASSIGN, A.MERGE):
            assert not legal(s, a, R.RESIDENT)


def test_worker_can_never_judge_or_grant() -> None:
    for s in Status:
        for a in Action:
            if a not in WORKER_MAY_ONLY:
                assert not legal(s, a, R.WORKER), (s, a)


def test_supervision_actions_are_for_supervision_only() -> None:
    for s in Status:
        for a in SUPERVISION_ONLY:
            for r in (R.RESIDENT, R.WORKER, R.DISPATCHER):
                assert not legal(s, a, r), (s, a, r)
    # Extensions are a human decision: not even the system grants or refuses them.
    assert not legal(S.EXTENSION_REQUESTED, A.GRANT_EXTENSION, R.SYSTEM)
    assert not legal(S.EXTENSION_REQUESTED, A.REFUSE_EXTENSION, R.SYSTEM)
    assert legal(S.EXTENSION_REQUESTED, A.GRANT_EXTENSION, R.SUPERVISOR)


def test_every_non_terminal_status_can_reach_a_terminal_status() -> None:
    edges = graph_from_function()
    for s in set(Status) - EXPECTED_TERMINAL:
        assert reachable(edges, s) & EXPECTED_TERMINAL, f"{s} can never be finished"
        assert S.CLOSED in reachable(edges, s), f"{s} can never be closed"


def test_every_status_is_reachable_from_reported() -> None:
    assert reachable(graph_from_function(), S.REPORTED) == set(Status)


def test_only_cancelled_and_merged_are_dead_ends() -> None:
    edges = graph_from_function()
    assert {s for s, out in edges.items() if not out} == {S.CANCELLED, S.MERGED}


def test_handler_cannot_verify_own_work() -> None:
    sup = Actor(R.SUPERVISOR, 21)
    facts = CaseFacts(S.DISPATCHED)
    facts = transition(facts, A.ACCEPT, sup, at=at(0)).facts
    facts = transition(facts, A.COMPLETE, sup, at=at(1)).facts
    assert facts.handler_id == 21
    with pytest.raises(SelfVerification):
        transition(facts, A.APPROVE, sup, at=at(2))
    # Someone else may; and rejecting one's own work is not verification.
    assert transition(facts, A.APPROVE, Actor(R.SUPERVISOR, 22), at=at(2)).facts.verifier_id == 22
    assert transition(facts, A.REJECT, sup, at=at(2), note="redo").to_status is S.REWORK


def test_time_may_stand_still_but_not_go_backwards() -> None:
    facts = CaseFacts(S.REPORTED, last_event_at=at(10))
    disp = Actor(R.DISPATCHER, 31)
    assert transition(facts, A.REGISTER, disp, at=at(10)).at == at(10)
    with pytest.raises(ClockWentBackwards):
        transition(facts, A.REGISTER, disp, at=at(9))


def test_optional_note_is_trimmed_and_blank_means_none() -> None:
    disp = Actor(R.DISPATCHER, 31)
    assert transition(CaseFacts(S.REPORTED), A.REGISTER, disp, at=T0, note="  ok ").note == "ok"
    assert transition(CaseFacts(S.REPORTED), A.REGISTER, disp, at=T0, note="   ").note is None
    assert transition(CaseFacts(S.REPORTED), A.REGISTER, disp, at=T0).note is None


# ---- allowed_actions ----


@pytest.mark.parametrize("status", list(Status))
def test_allowed_actions_match_the_transition_function(status: Status) -> None:
    order = [a for (s, a) in TRANSITIONS if s == status]
    for role in Role:
        got = allowed_actions(status, role)
        assert len(got) == len(set(got))
        assert got == [a for a in order if a in got], "declaration order"
        # "Allowed" means the role may do it; it may still need a note.
        assert set(got) == {a for a in Action if legal(status, a, role)}


def test_allowed_actions_examples() -> None:
    assert allowed_actions(S.REPORTED, R.RESIDENT) == [A.CANCEL]
    assert allowed_actions(S.CLOSED, R.RESIDENT) == [A.REOPEN]
    assert allowed_actions(S.DISPATCHED, R.WORKER) == [A.ACCEPT, A.RETURN]
    assert allowed_actions(S.IN_PROGRESS, R.WORKER) == [A.COMPLETE, A.RETURN, A.REQUEST_EXTENSION]
    assert allowed_actions(S.AWAITING_VERIFICATION, R.WORKER) == []
    assert allowed_actions(S.AWAITING_VERIFICATION, R.SUPERVISOR) == [A.APPROVE, A.REJECT]
    assert allowed_actions(S.EXTENSION_REQUESTED, R.SUPERVISOR) == [A.GRANT_EXTENSION, A.REFUSE_EXTENSION]
    assert allowed_actions(S.REPORTED, R.DISPATCHER) == [A.REGISTER, A.CANCEL, A.MERGE]
    for s in (S.CANCELLED, S.MERGED):
        for r in Role:
            assert allowed_actions(s, r) == []


# ---- Property test: random actions by random people, with a clock that mostly moves forward ----

ROLE_PEOPLE = st.sampled_from([(role, pid) for role, ids in PEOPLE.items() for pid in ids])
NOTES = st.sampled_from([None, "", "  ", "reason", " 需要说明 "])
# Minutes from the last accepted event; negative values are attempts to go back in time.
STEP = st.one_of(st.integers(0, 600), st.integers(-120, -1))


class CaseMachine(RuleBasedStateMachine):
    """Drive one case with random actions and check the audit trail the test keeps."""

    @initialize(start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)))
    def start(self, start: datetime) -> None:
        self.facts = CaseFacts(S.REPORTED, last_event_at=start)
        self.log: list[Transition] = []
        self.successes = 0
        self.start_at = start

    def _try(self, action: Action, role: Role, person: int | None, note: str | None, minutes: int) -> None:
        before = self.facts
        when = before.last_event_at + timedelta(minutes=minutes)
        try:
            t = transition(before, action, Actor(role, person), at=when, note=note)
        except LifecycleError as exc:
            assert self.facts == before, "a refusal changes nothing"
            rule_ = TRANSITIONS.get((before.status, action))
            note_ok = bool(note and note.strip()) or (rule_ is not None and not rule_.note_required)
            if minutes < 0 and rule_ is not None and role in rule_.roles and note_ok:
                assert isinstance(exc, ClockWentBackwards)
            if isinstance(exc, ClockWentBackwards):
                assert minutes < 0
            return
        assert minutes >= 0, "an event before the last one was accepted"
        assert t.from_status is before.status and t.facts.status is t.to_status
        self.facts = t.facts
        self.log.append(t)
        self.successes += 1

    @rule(action=st.sampled_from(Action), who=ROLE_PEOPLE, note=NOTES, minutes=STEP)
    def any_action(self, action: Action, who: tuple, note: str | None, minutes: int) -> None:
        self._try(action, who[0], who[1], note, minutes)

    @rule(data=st.data(), note=NOTES, minutes=STEP)
    def plausible_action(self, data: st.DataObject, note: str | None, minutes: int) -> None:
        # Mostly-legal moves so that runs get deep into the workflow rather than bouncing off.
        options = [(a, r) for (s, a), rl in TRANSITIONS.items() if s == self.facts.status for r in rl.roles]
        if not options:
            return
        action, role = data.draw(st.sampled_from(options))
        person = data.draw(st.sampled_from(PEOPLE[role]))
        self._try(action, role, person, note, minutes)

    @invariant()
    def closed_case_was_verified_by_someone_else(self) -> None:
        f = self.facts
        if f.status is S.CLOSED and f.handler_id is not None and f.verifier_id is not None:
            assert f.verifier_id != f.handler_id

    @invariant()
    def one_audit_event_per_change_and_a_continuous_chain(self) -> None:
        assert len(self.log) == self.successes
        expected_from = S.REPORTED
        for t in self.log:
            assert t.from_status is expected_from
            expected_from = t.to_status
        assert expected_from is self.facts.status

    @invariant()
    def time_never_goes_backwards(self) -> None:
        times = [self.start_at] + [t.at for t in self.log]
        assert times == sorted(times)
        assert self.facts.last_event_at == times[-1]

    @invariant()
    def terminal_cases_only_reopen(self) -> None:
        if self.facts.status in (S.CANCELLED, S.MERGED):
            assert all(allowed_actions(self.facts.status, r) == [] for r in Role)


CaseMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestCaseMachine = CaseMachine.TestCase
