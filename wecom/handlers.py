"""WeCom inbound: each stored callback (text, image, location, menu click, card button) -> one service call.

`WecomHandlers.handle(payload)` is the inbox's handler for channel "wecom". Like the Telegram handlers it
parses, calls one service (in a worker thread) and answers refusals and read-only requests itself; what a
change means for anyone is queued by the service's events (wecom/renderers*.py). Card buttons carry the
Telegram keyboards' actions (wecom/actions.py); menu keys are `duty`, `tasks`, `patrol` and, for
supervisors, `stats` (`stats:today`, `stats:7d`, `stats:30d`) and `verify`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from models.tables import Person
from onegrid.i18n import gettext_for
from services import work
from services.context import ServiceContext
from services.db import transaction
from services.invitations import INVITE_PREFIX, InvalidInvitation, InvitationProblem, redeem_invitation
from services.people import find_person_by_wecom_userid
from wecom import conversation as conv
from wecom import handlers_patrol, handlers_supervision, handlers_work
from wecom.actions import Gettext, parse_key
from wecom.client import WecomClient
from wecom.formats import Button, Inbound, button_card, inbound_from_payload, text_message
from wecom.outbox import queue_to

log = logging.getLogger(__name__)

MENU_DUTY, MENU_TASKS, MENU_PATROL = "duty", "tasks", "patrol"


class WecomHandlers:
    def __init__(self, ctx: ServiceContext, client: WecomClient) -> None:
        self.ctx, self.client = ctx, client

    async def handle(self, payload: dict[str, Any], ticket: Any = None) -> None:
        """Handle one stored callback (`ticket`: the inbox's, unused: our rows are not its outgoing kind)."""
        message = inbound_from_payload(payload)
        person = await asyncio.to_thread(find_person_by_wecom_userid, self.ctx, wecom_userid=message.from_user)
        _ = gettext_for(person.locale if person else self.ctx.settings.default_locale)
        if person is None or not person.roles:
            await self.stranger(message, _)
            return
        turn = Turn(self, message, person, _)
        if message.msg_type == "event" and message.event == "template_card_event":
            if message.event_key.startswith("pr:"):  # a patrol report's card: its key names the draft
                await handlers_patrol.file(turn, message.event_key)
            else:
                await handlers_work.card_button(turn, parse_key(message.event_key))
        elif message.msg_type == "event" and message.event == "click":
            await self.menu(turn)
        elif message.msg_type == "text":
            await handlers_work.text(turn, message.fields.get("Content", "").strip())
        elif message.msg_type == "image":
            await handlers_work.image(turn, message.fields.get("MediaId", ""))
        elif message.msg_type == "location":
            await handlers_work.location(turn)
        # Other events (enter_agent, subscribe, ...) need no answer.

    async def stranger(self, message: Inbound, _: Gettext) -> None:
        """Someone OneGrid does not know: an invitation code binds them; anything else gets the hint."""
        content = message.fields.get("Content", "").strip() if message.msg_type == "text" else ""
        if content.startswith(INVITE_PREFIX):
            try:  # the welcome is queued with the binding (InvitationRedeemed)
                await asyncio.to_thread(redeem_invitation, self.ctx, token=content, wecom_userid=message.from_user,
                                        display_name=message.from_user)
            except InvalidInvitation as exc:
                texts = {
                    InvitationProblem.FORGED: _("This invitation link is not valid. Ask your supervisor for a new one."),
                    InvitationProblem.REUSED: _("This invitation link was already used; each link works once. "
                                                "Ask your supervisor for a new one."),
                    InvitationProblem.EXPIRED: _("This invitation link has expired. Ask your supervisor for a new one."),
                }
                await self.say(message.from_user, None, texts[exc.problem])
                return
            self.ctx.on_notifications()
            return
        if message.msg_type in ("text", "image", "location") or message.event in ("click", "template_card_event"):
            await self.say(message.from_user, None, _("This WeCom account is not registered with OneGrid yet. "
                                                      "Send the invitation code your supervisor gave you."))

    async def menu(self, turn: Turn) -> None:
        key = turn.message.event_key
        if key == MENU_DUTY:
            try:  # the service's event tells the worker
                await asyncio.to_thread(work.set_duty, self.ctx, person_id=turn.person.id)
            except work.WorkError as exc:
                await turn.refuse(exc)
        elif key == MENU_TASKS:
            await handlers_work.show_tasks(turn)
        elif key == MENU_PATROL:
            await handlers_patrol.start(turn)
        elif handlers_supervision.is_stats_key(key):
            await handlers_supervision.stats(turn, key)
        elif key == handlers_supervision.MENU_VERIFY:
            await handlers_supervision.verify_queue(turn)

    async def say(self, userid: str, person_id: int | None, text: str, buttons: list[Button] | None = None) -> None:
        """Answer a refusal or a read-only request (nothing changed, so nothing was queued with it)."""
        message = button_card(title=text.split("\n", 1)[0], sub_title=text.partition("\n")[2], buttons=buttons) \
            if buttons else text_message(text)

        def write() -> None:
            with transaction(self.ctx.sessions) as session:
                queue_to(session, userid, message, now=self.ctx.clock.now(), person_id=person_id)
        await asyncio.to_thread(write)
        self.ctx.on_notifications()


class Turn:
    """One inbound message from a known staff member, with the means to answer them."""

    def __init__(self, handlers: WecomHandlers, message: Inbound, person: Person, _: Gettext) -> None:
        self.handlers, self.message, self.person, self._ = handlers, message, person, _
        self.ctx, self.client = handlers.ctx, handlers.client

    @property
    def userid(self) -> str:
        return self.message.from_user

    async def say(self, text: str, buttons: list[Button] | None = None) -> None:
        await self.handlers.say(self.userid, self.person.id, text, buttons)

    async def refuse(self, exc: Exception) -> None:
        from wecom.texts import work_refusal  # noqa: PLC0415 - texts imports services the handlers need anyway

        await self.say(work_refusal(self._, exc))

    async def state(self) -> conv.Conversation:
        return await asyncio.to_thread(conv.load, self.ctx, self.userid)

    async def set_state(self, state: str | None, data: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(conv.save, self.ctx, self.userid, state, data)

    async def end(self, refused: Exception | None = None) -> None:
        """Leave the conversation's state; with `refused`, say why the action was refused."""
        await self.set_state(None)
        if refused is not None:
            await self.refuse(refused)
