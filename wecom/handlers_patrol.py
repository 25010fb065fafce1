"""巡查上报 on WeCom: a grid worker on duty reports a problem they found, from the app's menu (key `patrol`).

The steps of handlers/patrol.py in WeCom's means: the worker replies with the number of the kind of problem
(a card holds six buttons, the catalogue more), sends one to three photos and their location on site (＋ →
位置), a few words, then presses "I will handle it" or "To dispatch" on the card. The draft is the resident's
(services/report_draft.py, `patrol` set) kept in the conversation state with the photos' WeCom media ids;
the photos are fetched again and cleaned when the report is filed (services/patrol.py), and the answer and
the order come from its events.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services import patrol, report_choices
from services.cases import OutsideGrid
from services.photos import PhotoRejected
from services.report_draft import (
    MAX_PHOTOS,
    CategoryUnavailable,
    DescriptionTooLong,
    DraftPhoto,
    ReportDraft,
    clean_description,
)
from services.work_common import WorkError
from wecom import conversation as conv
from wecom import texts
from wecom.actions import cancel_buttons
from wecom.client import WecomError
from wecom.formats import Button

if TYPE_CHECKING:
    from wecom.handlers import Turn

CANCEL_FLOW = "pr"
CATEGORY, EVIDENCE, WORDS, CONFIRM = "category", "evidence", "words", "confirm"
SKIP = ("-", "－", "无")
MAX_WORDS = 1000


def _off_duty(turn: Turn) -> str:
    return turn._("You are off duty. Patrol reports are filed on duty: go on duty from the app's menu first.")


async def start(turn: Turn) -> None:
    _ = turn._
    try:
        await asyncio.to_thread(patrol.patrol_allowed, turn.ctx, worker_id=turn.person.id)
    except patrol.OffDuty:
        await turn.say(_off_duty(turn))
        return
    except WorkError as exc:
        await turn.refuse(exc)
        return
    choices = await asyncio.to_thread(report_choices.active_categories, turn.ctx)
    draft = ReportDraft.new(chat_id=0, now=turn.ctx.clock.now())  # WeCom has no chat id; nothing is sent to it
    draft.patrol = True
    await _keep(turn, draft, CATEGORY, codes=[c.code for c in choices])
    lines = [_("🚶 Patrol report (巡查上报). What did you find? Reply with its number:")]
    lines += [f"{number}. {choice.label(turn.person.locale)}" for number, choice in enumerate(choices, start=1)]
    await turn.say("\n".join(lines))
    await turn.say(_("Reply with a number, or press Cancel."), cancel_buttons(_, CANCEL_FLOW))


async def _keep(turn: Turn, draft: ReportDraft, step: str, **extra: Any) -> None:
    await turn.set_state(conv.PATROL, {**draft.to_state(), "step": step, **extra})


def _draft(state: conv.Conversation) -> ReportDraft:
    return ReportDraft.from_state(state.data)


async def _live(turn: Turn, state: conv.Conversation) -> ReportDraft | None:
    """The draft, or None after telling the worker it expired (report_draft_timeout_minutes without activity)."""
    draft = _draft(state)
    minutes = turn.ctx.settings.report_draft_timeout_minutes
    if draft is not None and not draft.expired(turn.ctx.clock.now(), timedelta(minutes=minutes)):
        draft.touched_at = turn.ctx.clock.now()
        return draft
    await turn.set_state(None)
    await turn.say(turn._("Your unfinished patrol report expired after {minutes} minutes without activity; nothing "
                          "was stored. Start again from the app's menu.").format(minutes=minutes))
    return None


async def _remind(turn: Turn, step: str | None) -> None:
    """What the current step waits for, when something else came."""
    _ = turn._
    if step == CATEGORY:
        await turn.say(_("Reply with a number, or press Cancel."), cancel_buttons(_, CANCEL_FLOW))
    elif step == EVIDENCE:
        await turn.say(_("Send photos of the problem, then your location on site (＋ → Location)."))
    elif step == WORDS:
        await turn.say(_("Now write a few words about the problem in one message (or send - to leave it out)."))
    else:
        await turn.say(_("Press a button on the card, or Cancel."), cancel_buttons(_, CANCEL_FLOW))


async def text(turn: Turn, state: conv.Conversation, content: str) -> None:
    _, draft, step = turn._, await _live(turn, state), state.data.get("step")
    if draft is None:
        return
    if step == CATEGORY:
        codes = state.data.get("codes", [])
        number = int(content) if content.isdigit() else 0
        if not 1 <= number <= len(codes):
            await turn.say(_("That is not a number on the list. Reply with the number of the kind of problem."))
            return
        draft.category = codes[number - 1]
        choice = await asyncio.to_thread(report_choices.get_category, turn.ctx, draft.category)
        await _keep(turn, draft, EVIDENCE)
        await turn.say(_("📷 {category}: send one to three photos of the problem, then your location on site "
                         "(＋ → Location).").format(category=choice.label(turn.person.locale)))
    elif step == WORDS:
        words = "" if content in SKIP else content
        try:
            draft.description = clean_description(words, limit=MAX_WORDS) or None
        except DescriptionTooLong as exc:
            await turn.say(_("Your text is {length} characters long; please keep it within {limit} characters.")
                           .format(length=exc.length, limit=exc.limit))
            return
        await _keep(turn, draft, CONFIRM, place=state.data.get("place"))
        await _card(turn, draft)
    else:
        await _remind(turn, step)


async def _evidence_draft(turn: Turn, state: conv.Conversation) -> ReportDraft | None:
    """The live draft when it waits for photos and the location; else None, the worker told what it waits for."""
    draft = await _live(turn, state)
    if draft is not None and state.data.get("step") != EVIDENCE:
        await _remind(turn, state.data.get("step"))
        return None
    return draft


async def image(turn: Turn, state: conv.Conversation, media_id: str) -> None:
    _, draft = turn._, await _evidence_draft(turn, state)
    if draft is None:
        return
    if len(draft.photos) >= MAX_PHOTOS:
        await turn.say(_("That is the most photos a report takes ({max}). Now send your location on site.").format(
            max=MAX_PHOTOS))
        return
    try:  # checked now, so the worker hears at once what is wrong; fetched again when the report is filed
        await asyncio.to_thread(report_choices.inspect_photo, await turn.client.download_media(media_id))
    except WecomError:
        await turn.say(_("This picture is incomplete (the file is cut off). Send it again."))
        return
    except PhotoRejected as exc:
        await turn.say(texts.picture_problem(_, exc.problem))
        return
    draft.photos.append(DraftPhoto(file_id=media_id, file_unique_id=f"wecom:{media_id}"[:128]))
    await _keep(turn, draft, EVIDENCE)
    await turn.say(_("Photo {count} of {max} received.").format(count=len(draft.photos), max=MAX_PHOTOS) + "\n"
                   + texts.location_prompt(_))


async def location(turn: Turn, state: conv.Conversation, lat: float, lon: float) -> None:
    _, draft = turn._, await _evidence_draft(turn, state)
    if draft is None:
        return
    choice = await asyncio.to_thread(report_choices.get_category, turn.ctx, draft.category)
    if choice.photo_required and not draft.photos:
        await turn.say(_("This kind of problem needs a photo first. Please send one, then the location."))
        return
    try:
        place = await asyncio.to_thread(report_choices.locate, turn.ctx, lat=lat, lon=lon, locale=turn.person.locale)
    except OutsideGrid:
        await turn.say(_("📍 This place ({lat:.5f}, {lon:.5f}) is outside the area OneGrid covers, so I cannot take "
                         "the report there. Please share the location of the problem itself, from where it is.").format(
            lat=lat, lon=lon))
        return
    draft.lat, draft.lon, draft.grid_code = lat, lon, place.grid_code
    await _keep(turn, draft, WORDS, place=place.name)
    await turn.say(_("Now write a few words about the problem in one message (or send - to leave it out)."))


async def _card(turn: Turn, draft: ReportDraft) -> None:
    _ = turn._
    choice = await asyncio.to_thread(report_choices.get_category, turn.ctx, draft.category)
    state = await turn.state()
    lines = [_("Grid: {grid}").format(grid=state.data.get("place", draft.grid_code)),
             _("Photos: {count}").format(count=len(draft.photos))]
    if draft.description:
        lines.append(_("Description: {description}").format(description=draft.description))
    title = _("🚶 Patrol report: {category}").format(category=choice.label(turn.person.locale))
    await turn.say("\n".join([title, *lines]), [
        Button(_("✅ Submit: I will handle it"), f"pr:keep:{draft.draft_id}", 1),
        Button(_("📤 To dispatch"), f"pr:hand:{draft.draft_id}", 3), Button(_("Cancel"), f"wc:{CANCEL_FLOW}", 3)])


async def file(turn: Turn, key: str) -> None:
    """The card's "I will handle it" (pr:keep:<draft>) or "To dispatch" (pr:hand:<draft>)."""
    _, state = turn._, await turn.state()
    parts = key.split(":")
    draft = _draft(state) if state.state == conv.PATROL else None
    if draft is None or state.data.get("step") != CONFIRM or len(parts) != 3 or parts[2] != draft.draft_id:
        await turn.say(_("Please finish the report first."))
        return
    if await _live(turn, state) is None:
        return
    try:
        photos = [await turn.client.download_media(p.file_id) for p in draft.photos]
    except WecomError:  # the draft stays: the worker presses again
        await turn.say(_("The photos could not be fetched from WeCom just now; nothing was stored. Press the "
                         "button again in a moment."))
        return
    try:  # the answer and the order come from the service's events
        await asyncio.to_thread(patrol.submit_patrol_report, turn.ctx, worker_id=turn.person.id, draft=draft,
                                photos=photos, hand_to_dispatch=parts[1] == "hand")
    except patrol.OffDuty:
        await turn.say(_off_duty(turn))  # the draft stays: on duty, then press again
        return
    except OutsideGrid:  # the map changed since the location was taken: the draft stays, without it
        draft.lat = draft.lon = draft.grid_code = None
        await _keep(turn, draft, EVIDENCE)
        await turn.say(_("The map has changed and this place is no longer inside a grid. Please share the location "
                         "again."))
        return
    except (WorkError, CategoryUnavailable, PhotoRejected) as exc:
        await turn.set_state(None)
        why = (texts.work_refusal(_, exc) if isinstance(exc, WorkError)
               else texts.picture_problem(_, exc.problem) if isinstance(exc, PhotoRejected)
               else _("This category is no longer offered; please choose another."))
        await turn.say(_("Report cancelled. Nothing was stored.") + "\n" + why)
        return
    await turn.set_state(None)

