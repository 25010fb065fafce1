"""/api/v1/campaigns: inspection campaigns (专项排查) — a checklist of places for the grids' workers."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter

from api.campaign_schemas import CampaignCreate, CampaignPublic
from api.params import StoreId
from api.deps import V1_PREFIX, ApiError, CtxDep, ReadKey, WriteKey, not_found
from api.params import utc
from services import area_queries, campaigns
from services.campaign_import import PlacesRefused, read_places

router = APIRouter(prefix=V1_PREFIX)


def _public(summary: campaigns.CampaignSummary) -> CampaignPublic:
    return CampaignPublic(id=summary.id, name=summary.name, area_code=summary.area_code, drill=summary.drill,
                          status=summary.status.value, places=summary.progress.total,
                          checked=summary.progress.checked, problems=summary.progress.problems,
                          case_numbers=list(summary.case_numbers))


@router.post("/campaigns", tags=["campaigns"], status_code=201, summary="Start a campaign from a list of places",
             description="Give the places as `places_geojson` or `places_csv` (one of them). Each place becomes an "
                         "inspection task for the on-duty workers of its grid; the area's supervisors get a live "
                         "progress card. Any bad place refuses the whole campaign (400, every problem listed).",
             responses={400: {"description": "The places or the checklist have problems; nothing was stored"},
                        404: {"description": "No such area in the key's subtree"}})
async def create_campaign(body: CampaignCreate, principal: WriteKey, ctx: CtxDep) -> CampaignPublic:
    await asyncio.to_thread(area_queries.ensure_area_visible, ctx, principal=principal, area_code=body.area_code)
    if (body.places_geojson is None) == (body.places_csv is None):
        raise ApiError(422, "places_required", "give exactly one of places_geojson and places_csv")
    try:
        places = (read_places(json.dumps(body.places_geojson), fmt="geojson") if body.places_geojson is not None
                  else read_places(body.places_csv or "", fmt="csv"))
        summary = await asyncio.to_thread(
            campaigns.create_campaign, ctx, name=body.name, area_code=body.area_code, checklist=body.checklist,
            places=places, drill=body.drill, ends_at=utc("ends_at", body.ends_at), category_code=body.category_code)
    except PlacesRefused as exc:
        raise ApiError(400, "places_refused", "; ".join(exc.problems)[:4000]) from None
    except campaigns.CampaignError as exc:
        raise ApiError(400, "campaign_refused", "; ".join(exc.problems)[:4000]) from None
    return _public(summary)


async def _visible(ctx: CtxDep, principal: ReadKey, campaign_id: StoreId) -> campaigns.CampaignSummary:
    try:
        summary = await asyncio.to_thread(campaigns.campaign_summary, ctx, campaign_id=campaign_id)
    except campaigns.CampaignNotFound:
        raise not_found("campaign") from None
    await asyncio.to_thread(area_queries.ensure_area_visible, ctx, principal=principal, area_code=summary.area_code)
    return summary


@router.get("/campaigns/{campaign_id}", tags=["campaigns"], summary="A campaign's progress",
            responses={404: {"description": "No such campaign in the key's subtree"}})
async def read_campaign(campaign_id: StoreId, principal: ReadKey, ctx: CtxDep) -> CampaignPublic:
    return _public(await _visible(ctx, principal, campaign_id))


@router.post("/campaigns/{campaign_id}/end", tags=["campaigns"], summary="End a campaign; its supervisors get the "
             "summary", responses={404: {"description": "No such campaign in the key's subtree"}})
async def end_campaign(campaign_id: StoreId, principal: WriteKey, ctx: CtxDep) -> CampaignPublic:
    await _visible(ctx, principal, campaign_id)
    return _public(await asyncio.to_thread(campaigns.end_campaign, ctx, campaign_id=campaign_id))
