"""The pure rules of the work-order side: judging a location proof, masking reporters, button data sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from geopy.distance import geodesic
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.worker_ui import CancelCb, OfferCb, ProofCb, StaffCb, TaskCb, VerifyCb
from services.privacy import mask_name, mask_phone
from services.work import REFUSING, LocationFix, LocationProblem, judge_location

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
CASE = (31.2304, 121.4737)  # People's Square
RULES = {"radius_m": 100.0, "now": NOW, "max_age_s": 180.0, "max_accuracy_m": 100.0}


def fix_at(distance_m: float, bearing: float, **kw) -> LocationFix:  # noqa: ANN003
    point = geodesic(meters=distance_m).destination(CASE, bearing)
    return LocationFix(lat=point.latitude, lon=point.longitude, **{"sent_at": NOW, **kw})


@settings(max_examples=300, deadline=None)
@given(
    distance=st.floats(0, 3000),
    bearing=st.floats(0, 359.9),
    accuracy=st.one_of(st.none(), st.floats(0, 3000)),
    age=st.floats(-50, 1200),
    forwarded=st.booleans(),
    venue=st.booleans(),
    via_bot=st.booleans(),
)
def test_a_location_is_accepted_exactly_when_every_rule_holds(distance, bearing, accuracy, age, forwarded, venue,
                                                              via_bot) -> None:
    fix = fix_at(distance, bearing, accuracy_m=accuracy, sent_at=NOW - timedelta(seconds=age), forwarded=forwarded,
                 venue=venue, via_bot=via_bot)
    judged = judge_location(fix, case_lat=CASE[0], case_lon=CASE[1], **RULES)
    vague = (accuracy or 0) > 100
    reach = 100 + min(accuracy or 0, 100)
    measured = judged.distance_m
    assert abs(measured - distance) < 0.01
    expected_ok = (not forwarded and not venue and not via_bot and age <= 180 and not vague and measured <= reach)
    assert judged.accepted is expected_ok
    assert (LocationProblem.TOO_FAR in judged.problems) is (measured > reach)
    clearly_far = not vague and measured - (accuracy or 0) > 100 + 200
    assert (LocationProblem.CLEARLY_FAR in judged.problems) is clearly_far
    assert (LocationProblem.LOW_ACCURACY in judged.problems) is vague
    assert (LocationProblem.STALE in judged.problems) is (age > 180)
    # Only distance and accuracy may be left to a supervisor; the rest are refused outright.
    assert judged.refused_outright is any(p in REFUSING for p in judged.problems)
    assert judged.refused_outright is (forwarded or venue or via_bot or age > 180)


def test_the_issue_examples() -> None:
    def judge(fix: LocationFix) -> tuple[LocationProblem, ...]:
        return judge_location(fix, case_lat=CASE[0], case_lon=CASE[1], **RULES).problems

    assert judge(fix_at(40, 90, accuracy_m=12, live_period=900)) == ()
    assert judge(fix_at(250, 0, accuracy_m=20)) == (LocationProblem.TOO_FAR,)  # doubtful: the supervisor judges
    # Precise and far beyond radius + margin: refused, not a doubt (issue 13, item 8).
    assert judge(fix_at(600, 0, accuracy_m=20)) == (LocationProblem.TOO_FAR, LocationProblem.CLEARLY_FAR)
    assert judge(fix_at(600, 0, accuracy_m=150)) == (LocationProblem.LOW_ACCURACY, LocationProblem.TOO_FAR)
    assert judge(fix_at(30, 0, accuracy_m=1400)) == (LocationProblem.LOW_ACCURACY,)
    assert judge(fix_at(30, 0, sent_at=NOW - timedelta(minutes=10))) == (LocationProblem.STALE,)
    assert judge(fix_at(30, 0, forwarded=True)) == (LocationProblem.FORWARDED,)
    # The reported accuracy widens the allowed distance: 150 m away with ±60 m is on site.
    assert judge(fix_at(150, 45, accuracy_m=60)) == ()


@given(st.text(min_size=2, max_size=40).filter(lambda t: len(t.strip()) >= 2))
def test_masked_names_keep_only_the_first_character(name: str) -> None:
    masked = mask_name(name)
    stripped = name.strip()
    assert masked[0] == stripped[0] and set(masked[1:]) == {"*"} and len(masked) <= 3


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.sampled_from(["", "+86 ", "86-"]))
def test_masked_phones_hide_the_middle_digits(number: str, prefix: str) -> None:
    masked = mask_phone(prefix + number)
    assert masked == number[:3] + "****" + number[-4:]


def test_short_or_missing_phones_show_nothing() -> None:
    assert mask_phone("110") == "***" and mask_phone(None) == "" and mask_name("  ") == ""


def test_callback_data_fits_telegrams_64_bytes_even_for_huge_ids() -> None:
    huge = 2**63 - 1
    packed = [
        OfferCb(action="a", offer_id=huge).pack(), TaskCb(action="c", task_id=huge).pack(),
        ProofCb(action="f", completion_id=huge).pack(), VerifyCb(action="a", case_id=huge, version=huge).pack(),
        StaffCb(action="y", person_id=huge, page=10_000).pack(), CancelCb(flow="ret").pack(),
    ]
    assert all(len(p.encode()) <= 64 for p in packed), [(p, len(p)) for p in packed]
