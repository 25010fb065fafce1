"""The lifecycles of tasks, offers, completions and spot checks: which action moves which status where.

Each table is read in one of two ways by the services:
- a row in hand: `row.status = TASKS.step(row.status, TaskAction.SUBMIT)` (raises `IllegalStep`);
- a compare-and-set UPDATE, where the guard is the WHERE clause:
  `sources, target = guard(TASKS, TaskAction.ACCEPT)`, then
  `.where(CaseTask.status.in_(sources), ...).values(status=target)`; zero rows means someone else won.
A new row takes its first status through `initial(TASKS, TaskStatus.WAITING)`.

Pure: only the status enums come from models.work / models.supervision (those modules also hold the
SQLModel tables, so SQLModel is imported transitively; this module itself uses none of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from models.state_table import IllegalStep, StateTable
from models.supervision import SpotCheckStatus
from models.work import CompletionStatus, OfferStatus, TaskStatus

S = TypeVar("S")
A = TypeVar("A")


class TaskAction(StrEnum):
    OFFER = "offer"  # offers go out to the best workers (new, picked up, passed on, unshelved)
    WAIT = "wait"  # nobody could be offered it: it waits (and is escalated)
    ASSIGN = "assign"  # given without an offer: a worker's own patrol report
    ACCEPT = "accept"  # a worker's Accept won the offer
    RETURN = "return"  # the holder handed it back (退单)
    WITHDRAW = "withdraw"  # the platform took it from its holder (worker deactivated)
    SHELVE = "shelve"  # the case was put on hold (挂账): whoever had it lets go
    REASSIGN = "reassign"  # a supervisor offers it to one chosen worker
    TAKE_OVER = "take_over"  # a supervisor holds it themself
    SUBMIT = "submit"  # the holder's proof is in
    REWORK = "rework"  # verification failed: back to the worker who did it (返工)
    CANCEL = "cancel"  # the case ended before this task was done


class OfferAction(StrEnum):
    ACCEPT = "accept"  # this worker won it
    LOSE = "lose"  # another worker accepted first
    DECLINE = "decline"  # handed back before accepting
    RETURN = "return"  # handed back after accepting
    WITHDRAW = "withdraw"  # the platform took it back: off duty, deactivated, reassigned, case ended


class CompletionAction(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    ABANDON = "abandon"  # the task left the worker before they submitted


class SpotCheckAction(StrEnum):
    PASS = "pass"  # photo and live location both count
    FAIL = "fail"  # answered, but not everything counted by the deadline
    EXPIRE = "expire"  # nothing arrived by the deadline (SILENT)


_T, _O, _C, _K = TaskStatus, OfferStatus, CompletionStatus, SpotCheckStatus
_OPEN_TASK = frozenset({_T.WAITING, _T.OFFERED, _T.ACCEPTED})
_UNHELD_TASK = frozenset({_T.WAITING, _T.OFFERED})

TASKS: StateTable[TaskStatus, TaskAction] = StateTable("task", {
    TaskAction.OFFER: (_UNHELD_TASK, _T.OFFERED),
    TaskAction.WAIT: (_UNHELD_TASK, _T.WAITING),
    TaskAction.ASSIGN: (frozenset({_T.WAITING}), _T.ACCEPTED),
    TaskAction.ACCEPT: (frozenset({_T.OFFERED}), _T.ACCEPTED),
    TaskAction.RETURN: (frozenset({_T.ACCEPTED}), _T.WAITING),
    TaskAction.WITHDRAW: (frozenset({_T.ACCEPTED}), _T.WAITING),
    TaskAction.SHELVE: (_OPEN_TASK, _T.WAITING),
    TaskAction.REASSIGN: (_OPEN_TASK, _T.OFFERED),
    TaskAction.TAKE_OVER: (_OPEN_TASK, _T.ACCEPTED),
    TaskAction.SUBMIT: (frozenset({_T.ACCEPTED}), _T.DONE),
    TaskAction.REWORK: (frozenset({_T.DONE}), _T.ACCEPTED),
    TaskAction.CANCEL: (_OPEN_TASK, _T.CANCELLED),
})

OFFERS: StateTable[OfferStatus, OfferAction] = StateTable("offer", {
    OfferAction.ACCEPT: (frozenset({_O.OPEN}), _O.ACCEPTED),
    OfferAction.LOSE: (frozenset({_O.OPEN}), _O.TAKEN),
    OfferAction.DECLINE: (frozenset({_O.OPEN}), _O.DECLINED),
    OfferAction.RETURN: (frozenset({_O.ACCEPTED}), _O.RETURNED),
    OfferAction.WITHDRAW: (frozenset({_O.OPEN, _O.ACCEPTED}), _O.WITHDRAWN),
})

COMPLETIONS: StateTable[CompletionStatus, CompletionAction] = StateTable("completion", {
    CompletionAction.SUBMIT: (frozenset({_C.DRAFT}), _C.SUBMITTED),
    CompletionAction.APPROVE: (frozenset({_C.SUBMITTED}), _C.APPROVED),
    CompletionAction.REJECT: (frozenset({_C.SUBMITTED}), _C.REJECTED),
    CompletionAction.ABANDON: (frozenset({_C.DRAFT}), _C.ABANDONED),
})

SPOT_CHECKS: StateTable[SpotCheckStatus, SpotCheckAction] = StateTable("spot_check", {
    SpotCheckAction.PASS: (frozenset({_K.PENDING}), _K.PASSED),
    SpotCheckAction.FAIL: (frozenset({_K.PENDING}), _K.FAILED),
    SpotCheckAction.EXPIRE: (frozenset({_K.PENDING}), _K.SILENT),
})

# The statuses a row may be created with. An offer row is made ACCEPTED when a task is given without
# an offer (a patrol report); a spot check is made NOBODY, already finished, when no worker is on duty.
INITIAL: Mapping[str, frozenset] = {
    TASKS.name: frozenset({_T.WAITING}),
    OFFERS.name: frozenset({_O.OPEN, _O.ACCEPTED}),
    COMPLETIONS.name: frozenset({_C.DRAFT}),
    SPOT_CHECKS.name: frozenset({_K.PENDING, _K.NOBODY}),
}

CREATE = "create"  # the pseudo-action named by IllegalStep when a row is created with a wrong status


def initial(table: StateTable[S, A], status: S) -> S:
    """`status` itself when a new row of `table` may start in it; raises `IllegalStep` otherwise."""
    if status not in INITIAL[table.name]:
        raise IllegalStep(table.name, status, CREATE)
    return status


def guard(table: StateTable[S, A], action: A) -> tuple[frozenset[S], S]:
    """(sources, target) of `action`, for `UPDATE ... WHERE status IN sources SET status = target`."""
    return table.sources(action), table.target(action)


def terminal(table: StateTable[S, A], statuses: type[S]) -> frozenset[S]:
    """The members of the enum `statuses` that no action of `table` leaves."""
    leaving = frozenset().union(*(table.sources(a) for a in table.actions))
    return frozenset(statuses) - leaving
