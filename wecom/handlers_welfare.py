"""WeCom handlers of welfare checks: the worker presses what they found, then sends their location at the home.

The same services as handlers/alarms.py: `welfare.held_check` before the choice is kept, `welfare.record_outcome`
with the location; the receipt and the family's message come from the service's event.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from models.elders import WelfareOutcome
from services import welfare, work
from wecom import conversation as conv
from wecom import texts
from wecom.actions import Action, cancel_buttons, outcome_labels

if TYPE_CHECKING:
    from wecom.handlers import Turn

CANCEL_FLOW = "wf"  # the key of the prompt's Cancel button (wc:wf)


async def choose_outcome(turn: Turn, action: Action) -> None:
    _ = turn._
    try:
        outcome = WelfareOutcome(action.action)
    except ValueError:
        return  # not a button we made
    try:
        number = await asyncio.to_thread(welfare.held_check, turn.ctx, task_id=action.ids[0], worker_id=turn.person.id)
    except work.WorkError as exc:
        await turn.refuse(exc)
        return
    await turn.set_state(conv.WELFARE, {"task_id": action.ids[0], "outcome": outcome.value})
    await turn.say(_("Case {number}: {outcome}.\nNow send your location at the home to record it, or press Cancel "
                     "to choose again.").format(number=number, outcome=outcome_labels(_)[outcome]),
                   cancel_buttons(_, CANCEL_FLOW))


async def hint(turn: Turn) -> None:
    """Anything but a location while the location is awaited."""
    _ = turn._
    await turn.say(_("Send your location at the home to record the outcome, or press Cancel."),
                   cancel_buttons(_, CANCEL_FLOW))


async def location(turn: Turn, state: conv.Conversation, fix: work.LocationFix) -> None:
    _ = turn._
    try:  # the service's event answers with the receipt
        await asyncio.to_thread(welfare.record_outcome, turn.ctx, task_id=state.data["task_id"],
                                worker_id=turn.person.id, outcome=WelfareOutcome(state.data["outcome"]), fix=fix)
    except work.LocationRefused as exc:
        await turn.say(texts.welfare_location_refusal(_, exc.judgement))
        return
    except work.WorkError as exc:
        await turn.end(exc)
        return
    await turn.set_state(None)
