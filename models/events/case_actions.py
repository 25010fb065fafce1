"""Events of the case-level actions that end or move a case's work: cancel (注销), merge, a resident's
withdrawal, rework ordered by a reopen or the office, and an office's approval."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.events import Event


@dataclass(frozen=True, kw_only=True)
class CaseCancelled(Event):
    """Case `case_number` was cancelled as invalid with `reason`; `actor_person_id` (a supervisor) did it,
    None for an API key. Followers learn it from `CaseStatusChanged`; this event confirms to the actor."""

    case_id: int
    case_number: str
    actor_person_id: int | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class CaseMerged(Event):
    """Duplicate `case_number` was merged into `into_number`; `moved_person_ids` (its reporter and
    followers) now follow the surviving case and are told so; the actor (if a person) gets a confirmation."""

    case_id: int
    case_number: str
    into_case_id: int
    into_number: str
    moved_person_ids: tuple[int, ...]
    actor_person_id: int | None


class WithdrawalOutcome(StrEnum):
    CANCELLED = "cancelled"  # the reporter was its only follower: the case is cancelled
    UNFOLLOWED = "unfollowed"  # others reported it too: it stays open for them, the reporter stops following


@dataclass(frozen=True, kw_only=True)
class ReportWithdrawn(Event):
    """Resident `person_id` withdrew their report `case_number` (the reply to them)."""

    case_id: int
    case_number: str
    person_id: int
    outcome: WithdrawalOutcome


@dataclass(frozen=True, kw_only=True)
class ReworkOrdered(Event):
    """Case `case_number` went back to rework without a supervisor's card decision (a reopen, or the
    office by API): `worker_ids` hold its tasks again and are told `reason`."""

    case_id: int
    case_number: str
    worker_ids: tuple[int, ...]
    reason: str
    card_ids: tuple[int, ...] = ()  # verification cards of the round, now decided


@dataclass(frozen=True, kw_only=True)
class ClosedByOffice(Event):
    """Case `case_number` was approved and closed by an API key (the dispatch office); its open cards
    `card_ids` are decided and its workers are thanked."""

    case_id: int
    case_number: str
    card_ids: tuple[int, ...]
