"""Answers to a category's questions posted through Open311 reach the worker's order, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.api import CaseSubmission
from services.api_keys import authenticate, create_key
from services.context import ServiceContext
from services.intake import BadAttributes, ServiceRequest, set_service_questions, submit_service_request
from models.tables import Case
from tests.worker_support import GRID, add_worker, make_ctx, point_in, queued


@pytest.fixture
def ctx(db, clock, tmp_path) -> ServiceContext:
    return make_ctx(db.sessions, clock, tmp_path)


def _principal(ctx: ServiceContext):  # noqa: ANN202
    _, token = create_key(ctx, name="app", scopes=["write"], area_code=None)
    return authenticate(ctx, token=token)


def test_the_work_order_shows_the_answers_and_masks_numbers_in_the_text(ctx, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 601)
    set_service_questions(ctx, category_code="exposed_garbage", questions=[
        {"code": "volume", "datatype": "singlevaluelist", "required": True, "description": "How much garbage?",
         "values": [{"key": "bag", "name": "A bag"}, {"key": "pile", "name": "A pile"}]},
        {"code": "kinds", "datatype": "multivaluelist", "description": "What kind?",
         "values": [{"key": "food", "name": "Food waste"}, {"key": "bulky", "name": "Bulky items"}]},
        {"code": "note", "datatype": "text"},
    ])
    lat, lon = point_in(GRID)
    case = submit_service_request(ctx, principal=_principal(ctx), request=ServiceRequest(
        service_code="exposed_garbage", lat=lat, lon=lon, description="Call 13812345678 at the gate",
        attributes={"volume": "pile", "kinds": ["food", "bulky"], "note": "ID 110101199003071234"}))
    [order] = queued(db.sessions, 601)  # one message: the order (no photo here), its buttons with it
    text = order.payload["text"]
    assert "How much garbage?: A pile" in text and "What kind?: Food waste, Bulky items" in text
    assert "note: ID **************1234" in text and "110101" not in text
    assert "138****5678" in text and "13812345678" not in text
    with db.sessions() as s:
        stored = s.exec(select(CaseSubmission).where(CaseSubmission.case_id == case.id)).one()
    assert stored.attributes == {"volume": "pile", "kinds": ["food", "bulky"], "note": "ID 110101199003071234"}


def test_a_refused_answer_stores_nothing(ctx, db) -> None:
    set_service_questions(ctx, category_code="exposed_garbage", questions=[
        {"code": "volume", "datatype": "singlevaluelist", "required": True,
         "values": [{"key": "bag", "name": "A bag"}]}])
    lat, lon = point_in(GRID)
    with pytest.raises(BadAttributes, match="volume"):
        submit_service_request(ctx, principal=_principal(ctx), request=ServiceRequest(
            service_code="exposed_garbage", lat=lat, lon=lon, attributes={"volume": "truck"}))
    with db.sessions() as s:
        assert s.exec(select(Case)).first() is None and s.exec(select(CaseSubmission)).first() is None
