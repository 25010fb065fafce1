"""The read services behind the API routes, called directly: scoping and refusals carry data, not text."""

from __future__ import annotations

import pytest

from services import case_queries, open311_queries, people_queries, sync_push
from services.api_keys import authenticate
from services.api_views import BadCursor, BadFilter, NotVisible, decode_cursor, encode_cursor
from tests.api.conftest import STREET_A, STREET_B


def test_a_cursor_round_trips_and_a_foreign_one_is_refused() -> None:
    assert decode_cursor(encode_cursor(41)) == 41
    for foreign in ("not-a-cursor", encode_cursor(True), "eyJiZWZvcmUiOiAiNDEifQ"):
        with pytest.raises(BadCursor):
            decode_cursor(foreign)


async def test_case_reads_stay_inside_the_keys_area(api) -> None:
    r = await api.intake("street_b", street=STREET_B, event="b1")
    foreign_id = r.json()["case"]["id"]
    r = await api.intake("street_a", event="a1")
    own_number = r.json()["case"]["number"]
    street_a = authenticate(api.ctx, token=api.tokens["street_a"])

    page = case_queries.list_cases(api.ctx, principal=street_a, flt=case_queries.CaseFilter(), limit=10, cursor=None)
    assert [v.case.number for v in page.items] == [own_number] and page.next_cursor is None
    with pytest.raises(NotVisible) as refused:
        case_queries.read_case(api.ctx, principal=street_a, case_id=foreign_id)
    assert refused.value.what == "case"
    with pytest.raises(NotVisible) as refused:
        case_queries.list_cases(api.ctx, principal=street_a, flt=case_queries.CaseFilter(area_code=STREET_B),
                                limit=10, cursor=None)
    assert refused.value.what == "area"
    with pytest.raises(BadFilter) as bad:
        case_queries.list_cases(api.ctx, principal=street_a, flt=case_queries.CaseFilter(statuses=("lost",)),
                                limit=10, cursor=None)
    assert (bad.value.field, bad.value.value) == ("status", "lost")
    with pytest.raises(NotVisible):
        people_queries.list_people(api.ctx, principal=street_a, roles=(), area_code=STREET_B, active=None,
                                   limit=10, cursor=None)

    foreign_number = case_queries.read_case(
        api.ctx, principal=authenticate(api.ctx, token=api.tokens["admin"]), case_id=foreign_id).view.case.number
    with pytest.raises(NotVisible):
        open311_queries.find_requests(api.ctx, principal=street_a,
                                      query=open311_queries.RequestQuery(numbers=(foreign_number,)))
    [record] = open311_queries.find_requests(api.ctx, principal=street_a,
                                             query=open311_queries.RequestQuery(numbers=(own_number,)))
    assert record.case.number == own_number and record.case.grid_code.startswith(STREET_A)


async def test_an_upstream_push_is_refused_unless_configured(api) -> None:
    with pytest.raises(sync_push.PushNotConfigured):
        sync_push.apply_upstream_push(api.ctx, body=b"[]", timestamp=None, signature=None)
