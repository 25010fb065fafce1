"""A pure transition table: (status, action) -> next status, for the small lifecycles beside the case's.

Tasks, offers, completions and spot checks each have one (models/work_lifecycles.py). A status column
of those rows is only ever assigned the result of `step` (or, in a compare-and-set UPDATE, of
`target` guarded by `sources`), so an illegal change raises instead of being written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

S = TypeVar("S")
A = TypeVar("A")


class IllegalStep(ValueError):
    """`action` is not allowed from `status` in `table`."""

    def __init__(self, table: str, status: object, action: object) -> None:
        super().__init__(f"{table}: {action} is not allowed from {status}")
        self.table, self.status, self.action = table, status, action


class StateTable(Generic[S, A]):
    """Each action moves from a set of statuses to one status."""

    def __init__(self, name: str, rules: Mapping[A, tuple[frozenset[S], S]]) -> None:
        self.name = name
        self._rules = dict(rules)

    @property
    def actions(self) -> tuple[A, ...]:
        return tuple(self._rules)

    def sources(self, action: A) -> frozenset[S]:
        """The statuses `action` may start from (for `UPDATE ... WHERE status IN sources`)."""
        return self._rules[action][0]

    def target(self, action: A) -> S:
        return self._rules[action][1]

    def allowed(self, status: S, action: A) -> bool:
        return action in self._rules and status in self._rules[action][0]

    def step(self, status: S, action: A) -> S:
        """The status after `action` from `status`; raises IllegalStep when the pair is not in the table."""
        if not self.allowed(status, action):
            raise IllegalStep(self.name, status, action)
        return self._rules[action][1]
