"""What the invitation and staff services refuse, as exceptions carrying data (services/invitations.py)."""

from __future__ import annotations

from enum import StrEnum


class InvitationError(Exception):
    """A request that cannot be met; nothing was written."""


class InvitationProblem(StrEnum):
    FORGED = "forged"  # no such invitation (or not even the shape of one)
    REUSED = "reused"
    EXPIRED = "expired"


class InvalidInvitation(InvitationError):
    def __init__(self, problem: InvitationProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class BadInvitationRequest(InvitationError):
    """Wrong role, unknown area or department: said in plain words for the command line."""


class NotAllowed(InvitationError):
    """The acting person may not do this (not a supervisor of that area, or acting on themselves)."""


class AlreadyInactive(InvitationError):
    pass


class InvitationNotFound(InvitationError):
    """No such invitation (or it lies outside the caller's area: the same answer)."""


class InvitationUsed(InvitationError):
    """The invitation was redeemed already; revoking it would change nothing."""


class PersonNotFound(InvitationError):
    """No such person (or outside the caller's area: the same answer)."""
