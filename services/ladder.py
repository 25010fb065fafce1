"""The escalation policy: which steps of the ladder fire when, and who each one tells.

The policy file (data/escalation_policy.json, or ONEGRID_ESCALATION_POLICY_PATH) has a default
ladder and optional ladders per category; each step fires `offset_minutes` after the accept or
handle deadline and notifies one level (the holding worker, or the supervisors of the grid, street,
district or city, or the street's 居委会 for a welfare check). It is re-read when the file changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from models.lifecycle import Status
from models.tables import Case
from services.context import ServiceContext

POLICY_FILE = Path(__file__).resolve().parent.parent / "data" / "escalation_policy.json"
# "committee": the 居委会 contacts of the case's street (life-safety categories, services/welfare.py).
LEVELS = ("worker", "grid", "street", "district", "city", "committee")
# Statuses in which each deadline's clock runs.
ACCEPT_PHASE = frozenset({Status.REGISTERED, Status.DISPATCHED, Status.RETURNED})
HANDLE_PHASE = ACCEPT_PHASE | {Status.IN_PROGRESS, Status.EXTENSION_REQUESTED, Status.REWORK}


class PolicyError(ValueError):
    """The policy file is wrong; the message says where."""


@dataclass(frozen=True)
class Step:
    code: str
    after: str  # accept_due | handle_due
    offset_minutes: int
    notify: str  # one of LEVELS


@dataclass(frozen=True)
class Ladder:
    steps: tuple[Step, ...]
    repeat_minutes: int = 60


@dataclass(frozen=True)
class Policy:
    default: Ladder
    categories: dict[str, Ladder] = field(default_factory=dict)

    def for_category(self, code: str) -> Ladder:
        return self.categories.get(code, self.default)


def _ladder(raw: dict, where: str) -> Ladder:
    steps = []
    seen = set()
    for i, s in enumerate(raw.get("steps", [])):
        try:
            step = Step(str(s["code"]), str(s["after"]), int(s.get("offset_minutes", 0)), str(s["notify"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"{where}.steps[{i}]: needs code, after, notify (and offset_minutes)") from exc
        if step.after not in ("accept_due", "handle_due"):
            raise PolicyError(f"{where}.steps[{i}]: after must be accept_due or handle_due")
        if step.notify not in LEVELS:
            raise PolicyError(f"{where}.steps[{i}]: notify must be one of {', '.join(LEVELS)}")
        if step.offset_minutes < 0 or step.code in seen or len(step.code) > 64:
            raise PolicyError(f"{where}.steps[{i}]: offsets are >= 0 and codes unique (at most 64 characters)")
        seen.add(step.code)
        steps.append(step)
    repeat = int(raw.get("repeat_minutes", 60))
    if repeat < 0:
        raise PolicyError(f"{where}.repeat_minutes must be >= 0")
    return Ladder(tuple(steps), repeat)


def parse_policy(doc: dict) -> Policy:
    if "default" not in doc:
        raise PolicyError("the policy needs a default ladder")
    return Policy(_ladder(doc["default"], "default"),
                  {code: _ladder(raw, f"categories.{code}") for code, raw in doc.get("categories", {}).items()})


@lru_cache(maxsize=8)
def _policy_cached(path: str, mtime: float) -> Policy:
    return parse_policy(json.loads(Path(path).read_text(encoding="utf-8")))


def policy_of(ctx: ServiceContext) -> Policy:
    """The policy file named by ONEGRID_ESCALATION_POLICY_PATH, else data/escalation_policy.json (re-read on change)."""
    path = Path(ctx.settings.escalation_policy_path or POLICY_FILE)
    return _policy_cached(str(path), path.stat().st_mtime)


def step_time(case: Case, step: Step) -> datetime | None:
    base = case.accept_due_at if step.after == "accept_due" else case.handle_due_at
    return None if base is None else base + timedelta(minutes=step.offset_minutes)


def applies(step: Step, status: Status) -> bool:
    return status in (ACCEPT_PHASE if step.after == "accept_due" else HANDLE_PHASE)

