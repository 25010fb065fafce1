"""/api/v1/people: staff (and residents, for keys without an area); deactivating workers.

Personal data is masked without the `pii` scope (api/views.py `person_detail`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import V1_PREFIX, AdminKey, ApiError, CtxDep, ReadKey, not_found
from api.idempotent import IDEMPOTENT_RESPONSES, IdempotencyKey, json_answer, run_idempotent
from api.params import Cursor, PageLimit, PersonId
from api.schemas import DeactivationAnswer, PersonDetail, PersonPage, PersonRoleFilter
from api.views import person_detail
from models.lifecycle import Role
from services import invitations, people_queries
from services.cases import StaleCase

router = APIRouter(prefix=V1_PREFIX)
ROLES: dict[PersonRoleFilter, tuple[Role, ...]] = {
    PersonRoleFilter.STAFF: (Role.WORKER, Role.SUPERVISOR),
    PersonRoleFilter.WORKER: (Role.WORKER,),
    PersonRoleFilter.SUPERVISOR: (Role.SUPERVISOR,),
    PersonRoleFilter.RESIDENT: (Role.RESIDENT,),
}


@router.get("/people", tags=["people"], summary="People in the key's area, newest first, with a cursor",
            description="Staff (workers and supervisors) by default; `role=resident` lists residents, who have "
                        "no area and so are listed for keys without an area only. Personal data is masked "
                        "without the `pii` scope (see PersonDetail).",
            responses={404: {"description": "The area filter lies outside the key's area"}})
def list_people(principal: ReadKey, ctx: CtxDep,
                role: Annotated[PersonRoleFilter, Query()] = PersonRoleFilter.STAFF,
                area_code: Annotated[str | None, Query(max_length=64, description="People in this area's subtree")] = None,
                active: bool | None = None, limit: PageLimit = 50, cursor: Cursor = None) -> PersonPage:
    page = people_queries.list_people(ctx, principal=principal, roles=ROLES[role], area_code=area_code,
                                      active=active, limit=limit, cursor=cursor)
    return PersonPage(items=[person_detail(p, principal) for p in page.items], next_cursor=page.next_cursor)


@router.get("/people/{person_id}", tags=["people"], summary="One person",
            responses={404: {"description": "No such person in the key's area"}})
def read_person(person_id: PersonId, principal: ReadKey, ctx: CtxDep) -> PersonDetail:
    return person_detail(people_queries.read_person(ctx, principal=principal, person_id=person_id), principal)


@router.post("/people/{person_id}/deactivate", tags=["people"],
             summary="Deactivate a worker: no new orders; held orders and open offers go back to dispatch",
             description="The worker is told, naming this key. Work already submitted stays for verification.",
             responses={**IDEMPOTENT_RESPONSES,
                        404: {"description": "No such person in the key's area"},
                        409: {"description": "Not a worker, already inactive, or an Idempotency-Key in flight"}})
async def deactivate_person(person_id: PersonId, request: Request, principal: AdminKey, ctx: CtxDep,
                            idempotency_key: IdempotencyKey = None) -> Response:
    # Outside the key's area: 404 before the idempotency layer, so not even a key record is written.
    await asyncio.to_thread(people_queries.read_person, ctx, principal=principal, person_id=person_id)

    async def produce() -> Response:
        try:
            result = await asyncio.to_thread(people_queries.deactivate_worker, ctx, principal=principal,
                                             person_id=person_id)
        except invitations.PersonNotFound:
            raise not_found("no such person") from None
        except invitations.NotAllowed:
            raise ApiError(409, "not_a_worker", "only grid workers can be deactivated") from None
        except invitations.AlreadyInactive:
            raise ApiError(409, "already_inactive", "this worker is already inactive") from None
        except StaleCase:
            raise ApiError(409, "stale", "the worker's cases kept changing; try again") from None
        return json_answer(DeactivationAnswer(person=person_detail(result.person, principal),
                                              returned=result.returned, withdrawn=result.withdrawn))

    return await run_idempotent(request, ctx, principal, idempotency_key, produce)
