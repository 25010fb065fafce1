"""The location rules of a proof (pure): when a position sent by a worker proves presence at the case point."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from geopy.distance import geodesic

RECENT_PROOFS = timedelta(days=90)  # a worker's own proofs elsewhere that a new photo must not repeat
FUTURE_TOLERANCE_S = 60  # Telegram's clock and ours may disagree a little
# Beyond the radius by more than this, even at the near edge of a precise fix, nobody is on site.
CLEARLY_FAR_MARGIN_M = 200.0


class LocationProblem(StrEnum):
    FORWARDED = "forwarded"
    VENUE = "venue"
    VIA_BOT = "via_bot"
    STALE = "stale"
    LOW_ACCURACY = "low_accuracy"
    TOO_FAR = "too_far"
    CLEARLY_FAR = "clearly_far"  # precise and far beyond the radius: no supervisor should be asked


# Problems no supervisor can overlook: the fix says nothing about where the worker is now.
REFUSING = frozenset({LocationProblem.FORWARDED, LocationProblem.VENUE, LocationProblem.VIA_BOT,
                      LocationProblem.STALE})


@dataclass(frozen=True)
class LocationFix:
    """A location as Telegram delivered it."""

    lat: float
    lon: float
    sent_at: datetime  # the message date (or edit date for a live update), aware UTC
    accuracy_m: float | None = None
    live_period: int | None = None
    forwarded: bool = False
    venue: bool = False
    via_bot: bool = False
    message_id: int | None = None

    @property
    def live(self) -> bool:
        return bool(self.live_period)


@dataclass(frozen=True)
class LocationJudgement:
    distance_m: float
    allowed_m: float
    age_s: float
    problems: tuple[LocationProblem, ...]
    accuracy_m: float = 0.0

    @property
    def accepted(self) -> bool:
        return not self.problems

    @property
    def refused_outright(self) -> bool:
        return any(p in REFUSING for p in self.problems)

    @property
    def clearly_far(self) -> bool:
        return LocationProblem.CLEARLY_FAR in self.problems


def judge_location(fix: LocationFix, *, case_lat: float, case_lon: float, radius_m: float, now: datetime,
                   max_age_s: float, max_accuracy_m: float) -> LocationJudgement:
    """Whether `fix` proves presence at the case point.

    Accepted exactly when it is the worker's own position (not forwarded, not a venue, not via a
    bot), sent no more than `max_age_s` ago, with a reported accuracy of at most `max_accuracy_m`,
    and its geodesic distance to the case point is at most `radius_m` plus that accuracy.
    A precise fix (accuracy within `max_accuracy_m`) whose near edge is still more than
    `CLEARLY_FAR_MARGIN_M` beyond the radius is also CLEARLY_FAR: a refusal, not a doubt.
    """
    distance = geodesic((fix.lat, fix.lon), (case_lat, case_lon)).meters
    accuracy = max(fix.accuracy_m or 0.0, 0.0)
    allowed = radius_m + min(accuracy, max_accuracy_m)
    age = (now - fix.sent_at).total_seconds()
    problems: list[LocationProblem] = []
    if fix.forwarded:
        problems.append(LocationProblem.FORWARDED)
    if fix.venue:
        problems.append(LocationProblem.VENUE)
    if fix.via_bot:
        problems.append(LocationProblem.VIA_BOT)
    if age > max_age_s or age < -FUTURE_TOLERANCE_S:
        problems.append(LocationProblem.STALE)
    if accuracy > max_accuracy_m:
        problems.append(LocationProblem.LOW_ACCURACY)
    if distance > allowed:
        problems.append(LocationProblem.TOO_FAR)
        if accuracy <= max_accuracy_m and distance - accuracy > radius_m + CLEARLY_FAR_MARGIN_M:
            problems.append(LocationProblem.CLEARLY_FAR)
    return LocationJudgement(distance, allowed, age, tuple(problems), accuracy)
