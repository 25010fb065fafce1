"""/api/v1/invitations: one-time Telegram links that onboard workers and supervisors.

The link is in the creating answer only (the store keeps a hash of its token), marked
`Cache-Control: no-store`; lists carry no tokens.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import V1_PREFIX, AdminKey, ApiError, CtxDep, OneGridDep, not_found
from api.idempotent import IDEMPOTENT_RESPONSES, IdempotencyKey, json_answer, run_idempotent
from api.params import Cursor, InvitationId, PageLimit
from api.schemas import InvitationCreate, InvitationIssued, InvitationPage, StaffRole
from api.views import invitation_public
from bot.sandbox import BOT_USERNAME
from services import area_queries, invitations, people_queries

log = logging.getLogger(__name__)
router = APIRouter(prefix=V1_PREFIX)


async def bot_username(onegrid: OneGridDep) -> str:
    """ONEGRID_BOT_USERNAME, else the sandbox bot's, else the bot's own answer to getMe; 503 when none answers."""
    if onegrid.settings.bot_username:
        return onegrid.settings.bot_username.lstrip("@")
    if onegrid.sandbox is not None:
        return BOT_USERNAME
    if onegrid.bot is not None:
        try:
            me = await asyncio.wait_for(onegrid.bot.me(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - any failure: the link cannot name the bot
            log.warning("getMe failed while issuing an invitation: %s", exc)
        else:
            if me.username:
                return me.username
    raise ApiError(503, "bot_unknown", "the bot's username is unknown; set ONEGRID_BOT_USERNAME")


@router.post("/invitations", tags=["invitations"], status_code=201,
             summary="Invite a worker or supervisor: a one-time Telegram deep link",
             description="The link is in this answer only (the store keeps a hash of its token), so this "
                         "route takes no Idempotency-Key: a retry issues a new invitation; revoke the unused "
                         "one. The answer is marked `Cache-Control: no-store`.",
             responses={404: {"description": "No such area in the key's subtree"},
                        503: {"description": "The bot's username is unknown (set ONEGRID_BOT_USERNAME)"}})
async def create_invitation(body: InvitationCreate, principal: AdminKey, ctx: CtxDep,
                            onegrid: OneGridDep) -> InvitationIssued:
    await asyncio.to_thread(area_queries.ensure_area_visible, ctx, principal=principal, area_code=body.area_code)
    if body.role is StaffRole.WORKER and not body.department_code:
        raise ApiError(422, "department_required", "a worker needs department_code: orders go to departments")
    username = await bot_username(onegrid)  # before issuing: no link that cannot be shown
    try:
        issued = await asyncio.to_thread(
            invitations.create_invitation, ctx, role=body.role.value, area_code=body.area_code,
            department_code=body.department_code,
            ttl=timedelta(hours=body.valid_hours) if body.valid_hours else None)
    except invitations.BadInvitationRequest as exc:
        raise ApiError(422, "invalid_invitation", str(exc)) from None
    answer = InvitationIssued(
        id=issued.invitation_id, role=issued.role.value, area_code=issued.area_code,
        department_code=issued.department_code, expires_at=issued.expires_at, state="open",
        created_at=issued.created_at, link=invitations.invitation_link(username, issued.token))
    return JSONResponse(answer.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/invitations", tags=["invitations"], summary="Invitations in the key's area, newest first (no tokens)",
            responses={404: {"description": "The area filter lies outside the key's area"}})
def list_invitations(principal: AdminKey, ctx: CtxDep,
                     area_code: Annotated[str | None, Query(max_length=64,
                                                            description="Invitations to this area's subtree")] = None,
                     state: Annotated[invitations.InvitationState | None, Query()] = None,
                     limit: PageLimit = 50, cursor: Cursor = None) -> InvitationPage:
    page = people_queries.list_invitations(ctx, principal=principal, area_code=area_code, state=state,
                                           limit=limit, cursor=cursor)
    now = ctx.clock.now()
    return InvitationPage(items=[invitation_public(r, now) for r in page.items], next_cursor=page.next_cursor)


@router.post("/invitations/{invitation_id}/revoke", tags=["invitations"],
             summary="Revoke an unused invitation: its link is refused from now on",
             description="Revoking an expired (or already revoked) invitation changes nothing.",
             responses={**IDEMPOTENT_RESPONSES,
                        404: {"description": "No such invitation in the key's area"},
                        409: {"description": "The invitation was used already, or an Idempotency-Key in flight"}})
async def revoke_invitation(invitation_id: InvitationId, request: Request, principal: AdminKey, ctx: CtxDep,
                            idempotency_key: IdempotencyKey = None) -> Response:
    await asyncio.to_thread(people_queries.ensure_invitation_visible, ctx, principal=principal,
                            invitation_id=invitation_id)

    async def produce() -> Response:
        try:
            row = await asyncio.to_thread(invitations.revoke_invitation, ctx, invitation_id=invitation_id,
                                          within=principal.area_code)
        except invitations.InvitationNotFound:
            raise not_found("no such invitation") from None
        except invitations.InvitationUsed:
            raise ApiError(409, "invitation_used", "this invitation was used already") from None
        return json_answer(invitation_public(row, ctx.clock.now()))

    return await run_idempotent(request, ctx, principal, idempotency_key, produce)
