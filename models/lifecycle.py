"""The case lifecycle: statuses, actions, who may do what, and the one transition function.

Pure domain code: it imports nothing from aiogram, FastAPI or SQLModel, does no I/O,
and returns a `Transition` record that the service layer persists as the case's new
status plus exactly one audit event.

City workflow: 发现 → 立案 → 派遣 → 处置 → 核查 → 结案, with 退单 (return to dispatcher),
返工 (rework), 延期 (extension), 挂账 (shelving), 注销 (cancel as invalid) and merging
duplicates along the way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    REPORTED = "reported"  # 发现: raised, not yet accepted as a case
    REGISTERED = "registered"  # 立案
    DISPATCHED = "dispatched"  # 派遣: offered/assigned to worker(s)
    IN_PROGRESS = "in_progress"  # 处置: a worker accepted it
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请 pending a supervisor
    AWAITING_VERIFICATION = "awaiting_verification"  # 核查
    REWORK = "rework"  # 返工: verification failed or the resident says "not fixed"
    RETURNED = "returned"  # 退单: the worker handed it back to dispatch
    SHELVED = "shelved"  # 挂账: cannot be solved now, clock stopped
    CLOSED = "closed"  # 结案
    CANCELLED = "cancelled"  # 注销: invalid report
    MERGED = "merged"  # duplicate of another case


class Action(StrEnum):
    REPORT = "report"  # creates the case; only `open_case` produces it
    REGISTER = "register"
    DISPATCH = "dispatch"
    REASSIGN = "reassign"
    ACCEPT = "accept"
    RETURN = "return"
    COMPLETE = "complete"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_EXTENSION = "request_extension"
    GRANT_EXTENSION = "grant_extension"
    REFUSE_EXTENSION = "refuse_extension"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    REOPEN = "reopen"
    CANCEL = "cancel"
    MERGE = "merge"
    CLEAR_AT_SOURCE = "clear_at_source"  # 自动结案: the camera or sensor that raised it reports it gone
    PROGRESS = "progress"  # a worker's progress note (arrived, waiting...): audit only, never a transition


class Role(StrEnum):
    RESIDENT = "resident"
    WORKER = "worker"
    SUPERVISOR = "supervisor"
    DISPATCHER = "dispatcher"
    SYSTEM = "system"  # the platform itself: auto-dispatch, machine intake, upstream sync


TERMINAL: frozenset[Status] = frozenset({Status.CLOSED, Status.CANCELLED, Status.MERGED})
OPEN: frozenset[Status] = frozenset(Status) - TERMINAL - {Status.SHELVED}

_S, _A, _R = Status, Action, Role
_OFFICE = frozenset({_R.SUPERVISOR, _R.DISPATCHER, _R.SYSTEM})
_SUPERVISION = frozenset({_R.SUPERVISOR, _R.SYSTEM})


@dataclass(frozen=True)
class Rule:
    to: Status
    roles: frozenset[Role]
    note_required: bool = False


# (from status, action) → rule. Anything not listed is illegal.
TRANSITIONS: dict[tuple[Status, Action], Rule] = {
    (_S.REPORTED, _A.REGISTER): Rule(_S.REGISTERED, _OFFICE),
    (_S.REPORTED, _A.CANCEL): Rule(_S.CANCELLED, _OFFICE | {_R.RESIDENT}, note_required=True),
    (_S.REPORTED, _A.MERGE): Rule(_S.MERGED, _OFFICE),
    (_S.REGISTERED, _A.DISPATCH): Rule(_S.DISPATCHED, _OFFICE),
    (_S.REGISTERED, _A.SHELVE): Rule(_S.SHELVED, _SUPERVISION, note_required=True),
    # A resident may withdraw their own report until someone accepts it (services/case_ending.py checks it is theirs).
    (_S.REGISTERED, _A.CANCEL): Rule(_S.CANCELLED, _OFFICE | {_R.RESIDENT}, note_required=True),
    (_S.REGISTERED, _A.MERGE): Rule(_S.MERGED, _OFFICE),
    (_S.REGISTERED, _A.CLEAR_AT_SOURCE): Rule(_S.CLOSED, frozenset({_R.SYSTEM}), note_required=True),
    (_S.DISPATCHED, _A.ACCEPT): Rule(_S.IN_PROGRESS, frozenset({_R.WORKER, _R.SUPERVISOR})),
    (_S.DISPATCHED, _A.RETURN): Rule(_S.RETURNED, frozenset({_R.WORKER}), note_required=True),
    (_S.DISPATCHED, _A.REASSIGN): Rule(_S.DISPATCHED, _OFFICE),
    (_S.DISPATCHED, _A.SHELVE): Rule(_S.SHELVED, _SUPERVISION, note_required=True),
    (_S.DISPATCHED, _A.CANCEL): Rule(_S.CANCELLED, _OFFICE | {_R.RESIDENT}, note_required=True),
    (_S.DISPATCHED, _A.MERGE): Rule(_S.MERGED, _OFFICE),
    (_S.DISPATCHED, _A.CLEAR_AT_SOURCE): Rule(_S.CLOSED, frozenset({_R.SYSTEM}), note_required=True),
    (_S.RETURNED, _A.DISPATCH): Rule(_S.DISPATCHED, _OFFICE),
    (_S.RETURNED, _A.SHELVE): Rule(_S.SHELVED, _SUPERVISION, note_required=True),
    (_S.RETURNED, _A.CANCEL): Rule(_S.CANCELLED, _OFFICE, note_required=True),
    (_S.RETURNED, _A.MERGE): Rule(_S.MERGED, _OFFICE),
    (_S.RETURNED, _A.CLEAR_AT_SOURCE): Rule(_S.CLOSED, frozenset({_R.SYSTEM}), note_required=True),
    (_S.IN_PROGRESS, _A.COMPLETE): Rule(_S.AWAITING_VERIFICATION, frozenset({_R.WORKER, _R.SUPERVISOR})),
    (_S.IN_PROGRESS, _A.RETURN): Rule(_S.RETURNED, frozenset({_R.WORKER}), note_required=True),
    (_S.IN_PROGRESS, _A.REQUEST_EXTENSION): Rule(
        _S.EXTENSION_REQUESTED, frozenset({_R.WORKER}), note_required=True
    ),
    (_S.IN_PROGRESS, _A.REASSIGN): Rule(_S.DISPATCHED, _SUPERVISION | {_R.DISPATCHER}),
    (_S.IN_PROGRESS, _A.SHELVE): Rule(_S.SHELVED, _SUPERVISION, note_required=True),
    (_S.EXTENSION_REQUESTED, _A.GRANT_EXTENSION): Rule(_S.IN_PROGRESS, frozenset({_R.SUPERVISOR})),
    (_S.EXTENSION_REQUESTED, _A.REFUSE_EXTENSION): Rule(
        _S.IN_PROGRESS, frozenset({_R.SUPERVISOR}), note_required=True
    ),
    (_S.AWAITING_VERIFICATION, _A.APPROVE): Rule(_S.CLOSED, _SUPERVISION),
    (_S.AWAITING_VERIFICATION, _A.REJECT): Rule(_S.REWORK, _SUPERVISION, note_required=True),
    (_S.REWORK, _A.ACCEPT): Rule(_S.IN_PROGRESS, frozenset({_R.WORKER, _R.SUPERVISOR})),
    (_S.REWORK, _A.COMPLETE): Rule(_S.AWAITING_VERIFICATION, frozenset({_R.WORKER, _R.SUPERVISOR})),
    (_S.REWORK, _A.REASSIGN): Rule(_S.DISPATCHED, _SUPERVISION | {_R.DISPATCHER}),
    (_S.SHELVED, _A.UNSHELVE): Rule(_S.REGISTERED, _SUPERVISION),
    (_S.SHELVED, _A.CANCEL): Rule(_S.CANCELLED, _SUPERVISION, note_required=True),
    (_S.CLOSED, _A.REOPEN): Rule(_S.REWORK, frozenset({_R.RESIDENT, _R.SUPERVISOR}), note_required=True),
}

# Actions after which the acting person becomes the case's handler.
_TAKES_HANDLING = frozenset({_A.ACCEPT, _A.COMPLETE})


class LifecycleError(Exception):
    """Base of every refusal raised by `transition`."""


class IllegalTransition(LifecycleError):
    def __init__(self, status: Status, action: Action) -> None:
        super().__init__(f"action {action.value!r} is not allowed in status {status.value!r}")
        self.status, self.action = status, action


class RoleNotAllowed(LifecycleError):
    def __init__(self, status: Status, action: Action, role: Role) -> None:
        super().__init__(f"role {role.value!r} may not {action.value!r} a case in status {status.value!r}")
        self.status, self.action, self.role = status, action, role


class NoteRequired(LifecycleError):
    def __init__(self, action: Action) -> None:
        super().__init__(f"action {action.value!r} needs a reason")
        self.action = action


class SelfVerification(LifecycleError):
    def __init__(self) -> None:
        super().__init__("the person who handled a case cannot verify it")


class ClockWentBackwards(LifecycleError):
    def __init__(self, last: datetime, at: datetime) -> None:
        super().__init__(f"event time {at.isoformat()} is before the case's last event {last.isoformat()}")


@dataclass(frozen=True)
class Actor:
    role: Role
    person_id: int | None = None


@dataclass(frozen=True)
class CaseFacts:
    """What the lifecycle needs to know about a case to judge an action."""

    status: Status
    handler_id: int | None = None
    verifier_id: int | None = None
    last_event_at: datetime | None = None


@dataclass(frozen=True)
class Transition:
    """The outcome of a legal action: the new facts and the audit event to store."""

    action: Action
    actor: Actor
    from_status: Status | None  # None only for the event that opens the case
    to_status: Status
    at: datetime
    note: str | None
    facts: CaseFacts


def open_case(actor: Actor, *, at: datetime) -> Transition:
    """The first event of every case: it comes into being as REPORTED."""
    facts = CaseFacts(status=Status.REPORTED, last_event_at=at)
    return Transition(Action.REPORT, actor, None, Status.REPORTED, at, None, facts)


def allowed_actions(status: Status, role: Role) -> list[Action]:
    """Actions `role` may take on a case in `status`, in declaration order."""
    return [a for (s, a), rule in TRANSITIONS.items() if s == status and role in rule.roles]


def transition(
    facts: CaseFacts, action: Action, actor: Actor, *, at: datetime, note: str | None = None
) -> Transition:
    """Judge `action` by `actor` on a case described by `facts`.

    Returns the transition to persist, or raises a `LifecycleError` subclass and changes nothing.
    Guarantees: the (status, action) pair is in `TRANSITIONS`; the actor's role is allowed;
    a reason is present where the rule needs one; the handler never verifies their own work;
    event times never go backwards.
    """
    if at.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    rule = TRANSITIONS.get((facts.status, action))
    if rule is None:
        raise IllegalTransition(facts.status, action)
    if actor.role not in rule.roles:
        raise RoleNotAllowed(facts.status, action, actor.role)
    # A blank reason is no reason: store None, never an empty string, in the audit log.
    note = (note.strip() or None) if note else None
    if rule.note_required and not note:
        raise NoteRequired(action)
    if facts.last_event_at is not None and at < facts.last_event_at:
        raise ClockWentBackwards(facts.last_event_at, at)
    handler_id = facts.handler_id
    verifier_id = facts.verifier_id
    if action in _TAKES_HANDLING:
        handler_id = actor.person_id
    elif action is Action.APPROVE:
        if actor.person_id is not None and actor.person_id == handler_id:
            raise SelfVerification()
        verifier_id = actor.person_id
    elif action in (Action.REASSIGN, Action.RETURN) or rule.to is Status.REGISTERED:
        handler_id = None
    if rule.to is Status.REWORK:
        verifier_id = None
    new_facts = replace(facts, status=rule.to, handler_id=handler_id, verifier_id=verifier_id, last_event_at=at)
    return Transition(action, actor, facts.status, rule.to, at, note, new_facts)
