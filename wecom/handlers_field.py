"""WeCom handlers of progress notes on a held order: the same services and words as handlers/worker_field.py.

📝 Progress note on the order card shows the notes; a quick one is posted at once, ✏️ Write a note waits for
the worker's words in their next message. The confirmation (and, for "needs another department", the card to
the supervisors) comes from the service's event.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from models.field import ProgressKind
from services import work
from services.progress import NoteRequired, post_progress
from wecom import conversation as conv
from wecom.actions import Action, cancel_buttons, progress_buttons

if TYPE_CHECKING:
    from wecom.handlers import Turn

CANCEL_FLOW = "pn"
QUICK = {"a": ProgressKind.ARRIVED, "w": ProgressKind.WAITING_MATERIALS, "d": ProgressKind.NEEDS_DEPARTMENT}


async def progress_button(turn: Turn, action: Action) -> None:
    _, task_id = turn._, action.ids[0] if action.ids else 0
    if action.action == "m":
        await turn.say(_("How is it going? Choose a note, or write one."), progress_buttons(_, task_id))
    elif action.action in QUICK:
        try:
            await asyncio.to_thread(post_progress, turn.ctx, worker_id=turn.person.id, task_id=task_id,
                                    kind=QUICK[action.action])
        except work.WorkError as exc:
            await turn.refuse(exc)
    elif action.action == "t":
        await turn.set_state(conv.NOTE, {"task_id": task_id})
        await turn.say(_("Write your progress note in one message."), cancel_buttons(_, CANCEL_FLOW))


async def note_text(turn: Turn, state: conv.Conversation, content: str) -> None:
    _ = turn._
    try:
        await asyncio.to_thread(post_progress, turn.ctx, worker_id=turn.person.id,
                                task_id=int(state.data.get("task_id", 0)), kind=ProgressKind.TEXT, text=content)
    except NoteRequired:
        await turn.say(_("Please write the note in a few words, or press Cancel."), cancel_buttons(_, CANCEL_FLOW))
        return
    except work.WorkError as exc:
        await turn.end(exc)
        return
    await turn.set_state(None)


async def text_needed(turn: Turn) -> None:
    _ = turn._
    await turn.say(_("Please write the note as a text message, or press Cancel."), cancel_buttons(_, CANCEL_FLOW))
