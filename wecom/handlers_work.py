"""WeCom handlers of field work and verification: card buttons, proof photos and locations, reasons, /tasks.

Each calls the service the Telegram handler for the same action calls (handlers/worker*.py,
handlers/supervisor.py); refusals are answered here in the person's words.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services import verification, work
from services.cases import CaseNotFound
from wecom import conversation as conv
from wecom import handlers_field, handlers_patrol, handlers_supervision, handlers_welfare, texts
from wecom.actions import Action, cancel_buttons
from wecom.client import WecomError

if TYPE_CHECKING:
    from wecom.handlers import Turn

REFUSED = (work.WorkError, verification.VerificationError, CaseNotFound)


async def card_button(turn: Turn, action: Action | None) -> None:
    if action is None:
        return
    _ = turn._
    try:
        if action.prefix == "wo" and action.action == "a":
            result = await asyncio.to_thread(work.accept_offer, turn.ctx, offer_id=action.ids[0],
                                             worker_id=turn.person.id)
            if result.outcome is work.AcceptOutcome.ALREADY_YOURS:
                await turn.say(_("You have already accepted case {number}.").format(number=result.case_number))
            elif result.outcome is not work.AcceptOutcome.ACCEPTED:
                await turn.say(_("Case {number} is no longer open.").format(number=result.case_number))
        elif action.prefix in ("wo", "wt") and action.action == "r":
            target = {"offer_id": action.ids[0]} if action.prefix == "wo" else {"task_id": action.ids[0]}
            await turn.set_state(conv.RETURN_REASON, target)
            await turn.say(_("Why are you returning this work order to the dispatcher? Send the reason in one "
                             "message."), cancel_buttons(_, "ret"))
        elif action.prefix == "wt" and action.action == "c":
            view = await asyncio.to_thread(work.start_completion, turn.ctx, task_id=action.ids[0],
                                           worker_id=turn.person.id)
            await turn.set_state(conv.PROOF, {"completion_id": view.completion_id})
        elif action.prefix == "wp":
            await proof_button(turn, action)
        elif action.prefix == "sv" and action.action == "a":
            # The decision reaches everyone, this supervisor included, through ClosureApproved.
            await asyncio.to_thread(verification.approve, turn.ctx, case_id=action.ids[0], supervisor_id=turn.person.id,
                                    expected_version=action.ids[1])
        elif action.prefix == "sv" and action.action == "r":
            await turn.set_state(conv.REJECT_REASON, {"case_id": action.ids[0], "version": action.ids[1]})
            await turn.say(_("What must be redone? Send the reason in one message; the worker will see it."),
                           cancel_buttons(_, "rej"))
        elif action.prefix == "eq":
            await handlers_supervision.open_card(turn, action.ids[0])
        elif action.prefix == "wf":
            await handlers_welfare.choose_outcome(turn, action)
        elif action.prefix == "pn":
            await handlers_field.progress_button(turn, action)
        elif action.prefix == "wc":
            await turn.set_state(None)
            await turn.say({"ret": _("Cancelled: nothing was returned."),
                            handlers_field.CANCEL_FLOW: _("Cancelled: no note was posted."),
                            handlers_patrol.CANCEL_FLOW: _("Report cancelled. Nothing was stored."),
                            handlers_welfare.CANCEL_FLOW: _("Cancelled: nothing was recorded. Press an outcome on the "
                                                            "order again.")}.get(
                action.action, _("Cancelled: the case still awaits your verification.")))
    except REFUSED as exc:
        await turn.refuse(exc)


async def proof_button(turn: Turn, action: Action) -> None:
    _, completion_id = turn._, action.ids[0]
    if action.action == "d":
        view = await asyncio.to_thread(work.completion_view, turn.ctx, completion_id=completion_id,
                                       worker_id=turn.person.id)
        if not view.photos:
            await turn.say(_("Send at least one photo first."))
            return
        await turn.set_state(conv.PROOF, {"completion_id": completion_id})
        await turn.say(texts.location_prompt(_))
    elif action.action == "p":
        await asyncio.to_thread(work.clear_proof_photos, turn.ctx, completion_id=completion_id, worker_id=turn.person.id)
        await turn.set_state(conv.PROOF, {"completion_id": completion_id})
    elif action.action == "f":
        await asyncio.to_thread(work.submit_flagged, turn.ctx, completion_id=completion_id, worker_id=turn.person.id)
        await turn.set_state(None)
    elif action.action == "x":
        await turn.set_state(None)
        await turn.say(_("Paused. Your photos and location are kept; press Complete on the order (or see /tasks) "
                         "to continue."))


async def text(turn: Turn, content: str) -> None:
    _ = turn._
    state = await turn.state()
    try:
        if state.state == conv.RETURN_REASON:
            await asyncio.to_thread(work.return_order, turn.ctx, worker_id=turn.person.id, reason=content,
                                    offer_id=state.data.get("offer_id"), task_id=state.data.get("task_id"))
            await turn.set_state(None)
        elif state.state == conv.REJECT_REASON:
            await asyncio.to_thread(verification.reject, turn.ctx, case_id=state.data["case_id"],
                                    supervisor_id=turn.person.id, reason=content,
                                    expected_version=state.data["version"])
            await turn.set_state(None)
        elif state.state == conv.PROOF:
            await turn.say(_("Send a photo of the finished work, or press Done with photos."))
        elif state.state == conv.WELFARE:
            await handlers_welfare.hint(turn)
        elif state.state == conv.NOTE:
            await handlers_field.note_text(turn, state, content)
        elif state.state == conv.PATROL:
            await handlers_patrol.text(turn, state, content)
        else:
            await turn.say(handlers_supervision.menu_hint(_, turn.person))
    except (work.ReasonRequired, verification.ReasonRequired) as exc:
        await turn.refuse(exc)  # the prompt stays: the next message is the reason
    except REFUSED as exc:
        await turn.end(exc)


async def image(turn: Turn, media_id: str) -> None:
    _ = turn._
    state = await turn.state()
    if state.state == conv.WELFARE:
        await handlers_welfare.hint(turn)
        return
    if state.state == conv.NOTE:
        await handlers_field.text_needed(turn)
        return
    if state.state == conv.PATROL:
        await handlers_patrol.image(turn, state, media_id)
        return
    if state.state != conv.PROOF:
        await turn.say(_("Press Complete on the work order first."))
        return
    try:
        data = await turn.client.download_media(media_id)
    except WecomError:
        await turn.say(_("This picture is incomplete (the file is cut off). Send it again."))
        return
    try:  # the service's event acknowledges the photo
        await asyncio.to_thread(work.add_proof_photo, turn.ctx, completion_id=state.data["completion_id"],
                                worker_id=turn.person.id, data=data, file_unique_id=f"wecom:{media_id}"[:128])
    except (work.ProofPhotoRefused, work.SamePicture, work.TooManyPhotos) as exc:
        await turn.say(texts.photo_refusal(_, exc))
    except work.WorkError as exc:
        await turn.end(exc)


async def location(turn: Turn) -> None:
    _, fields = turn._, turn.message.fields
    state = await turn.state()
    fix = work.LocationFix(lat=float(fields["Location_X"]), lon=float(fields["Location_Y"]),
                           sent_at=datetime.fromtimestamp(turn.message.create_time, UTC))
    if state.state == conv.WELFARE:
        await handlers_welfare.location(turn, state, fix)
        return
    if state.state == conv.NOTE:
        await handlers_field.text_needed(turn)
        return
    if state.state == conv.PATROL:
        await handlers_patrol.location(turn, state, fix.lat, fix.lon)
        return
    if state.state != conv.PROOF:
        await turn.say(_("Press Complete on the work order first."))
        return
    try:  # the service's event gives the receipt, or what is wrong with a location kept for a decision
        result = await asyncio.to_thread(work.submit_location, turn.ctx, completion_id=state.data["completion_id"],
                                         worker_id=turn.person.id, fix=fix)
    except work.PhotosMissing:
        await turn.say(_("First send at least one photo of the finished work, then your location."))
        return
    except work.LocationRefused as exc:
        await turn.say(texts.location_refusal(_, exc.judgement))
        return
    except work.WorkError as exc:
        await turn.end(exc)
        return
    if result.outcome is work.LocationOutcome.SUBMITTED:
        await turn.set_state(None)


async def show_tasks(turn: Turn) -> None:
    _ = turn._
    try:
        view = await asyncio.to_thread(work.open_orders, turn.ctx, worker_id=turn.person.id)
    except work.WorkError as exc:
        await turn.refuse(exc)
        return
    if not view.held and not view.offered:
        await turn.say(_("You have no open work orders."))
        return
    lines = [_("📋 Your work orders:")] if view.held else []
    for order in [*view.held, *view.offered][:20]:
        lines.append(_("{number} · {category} · handle by {due}").format(
            number=order.case_number, category=order.category_name,
            due=texts.local_time(order.handle_due_at, turn.ctx.timezone)))
    await turn.say("\n".join(lines))
