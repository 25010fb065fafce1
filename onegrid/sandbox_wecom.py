"""WeCom / 政务微信 in sandbox mode (ONEGRID_SANDBOX_WECOM=on): the demo worker's console pane runs on it.

`with_sandbox_wecom(settings)` adds generated WeCom credentials, so `build` wires the real WeCom
channel (onegrid/wecom_app.py). `WecomPanes` is the sandbox's `PaneChannel` (bot/sandbox_channel.py):
on start it runs the WeCom emulator (wecom/emulator) on loopback, points the channel's client at it
and the emulator's members at OneGrid's own `/wecom/callback`, and binds the demo people named in
`WECOM_PEOPLE` to their WeCom userid (their notifications go to WeCom from then on; the resident
stays on Telegram).

What callers may rely on:
- Every action of a pane is what the WeCom app sends: an AES-encrypted, signed callback posted to
  the real callback route (text, image, location, template-card button event). A refused callback
  raises PersonaError("refused") and is not shown as sent.
- `chat()` answers in the console's chat shape: the messages the app sent (text; template cards as
  their text with one button per row, `callback_data` = the button key; images) and what the member
  sent, in order; the ids of app messages are their position in the member's inbox (from 1).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from bot.renderers.staff_menus import bot_commands
from bot.sandbox import UNSTARTED_API_URL, PersonaError
from onegrid.settings import Settings
from onegrid.wecom_app import WecomChannel
from services.context import ServiceContext
from services.people import bind_wecom_userid, find_person_by_telegram_id
from wecom.emulator import WecomEmulator, WecomMember
from wecom.emulator.server import Received

WECOM_PEOPLE = {"worker": "wangjianguo"}  # demo key -> WeCom userid
WECOM_MENU = ("tasks", "patrol", "duty")  # the app's menu keys (wecom/handlers.py), as README step 4 sets them
SANDBOX_AGENT_ID = 1000002
MEMBER_IDS = 1_000_000  # ids of what a member sent start above this (app messages count from 1)


def with_sandbox_wecom(settings: Settings) -> Settings:
    """`settings` with generated WeCom credentials when the sandbox runs with WeCom on, else unchanged."""
    if not (settings.sandbox_active and settings.sandbox_wecom == "on"):
        return settings
    aes_key = base64.b64encode(os.urandom(32)).decode("ascii").rstrip("=")  # 43 characters
    return settings.model_copy(update={
        "wecom_corp_id": f"ww{secrets.token_hex(8)}", "wecom_agent_id": SANDBOX_AGENT_ID,
        "wecom_secret": SecretStr(secrets.token_urlsafe(32)), "wecom_token": SecretStr(secrets.token_urlsafe(16)),
        "wecom_encoding_aes_key": SecretStr(aes_key), "wecom_api_base": UNSTARTED_API_URL,
    })


def _bind(ctx: ServiceContext, telegram_user_id: int, userid: str) -> bool:
    """Bind the demo person to `userid` and send their notifications there; False if not in the store."""
    person = find_person_by_telegram_id(ctx, telegram_user_id=telegram_user_id)
    if person is None:
        return False
    if person.wecom_userid != userid or person.channel != "wecom":
        bind_wecom_userid(ctx, person_id=person.id, wecom_userid=userid, use_it=True)
    return True


@dataclass
class _Sent:
    after: int  # how many app messages the member had when they sent this
    shown: dict[str, Any]


class WecomPanes:
    """The sandbox's WeCom side: see the module docstring."""

    name = "wecom"

    def __init__(self, ctx: ServiceContext, channel: WecomChannel) -> None:
        s = ctx.settings
        self.ctx, self.channel = ctx, channel
        self.emulator = WecomEmulator(
            corp_id=s.wecom_corp_id, secret=s.wecom_secret.get_secret_value(), agent_id=s.wecom_agent_id,
            token=s.wecom_token.get_secret_value(), encoding_aes_key=s.wecom_encoding_aes_key.get_secret_value(),
            now=lambda: ctx.clock.now().timestamp())
        self.members: dict[int, WecomMember] = {}
        self._sent: dict[int, list[_Sent]] = {}
        self._dates: dict[str, list[int]] = {}
        self._changed: Callable[[int], None] = lambda _persona: None

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self, persona_keys: dict[str, int], changed: Callable[[int], None]) -> None:
        await self.emulator.start("127.0.0.1", 0)
        self.channel.client.point_at(self.emulator.base_url)
        host = self.ctx.settings.api_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host  # noqa: S104
        self.emulator.callback_url = f"http://{host}:{self.ctx.settings.api_port}/wecom/callback"
        self._changed = changed
        for key, userid in WECOM_PEOPLE.items():
            persona = persona_keys.get(key)
            if persona is not None and await asyncio.to_thread(_bind, self.ctx, persona, userid):
                self.members[persona] = WecomMember(self.emulator, userid)
                self._sent[persona] = []
        by_userid = {m.userid: persona for persona, m in self.members.items()}

        def arrived(userid: str) -> None:
            self._dates.setdefault(userid, []).append(int(self.ctx.clock.now().timestamp()))
            if userid in by_userid:
                changed(by_userid[userid])
        self.emulator.listeners.append(arrived)

    async def stop(self) -> None:
        await self.emulator.stop()

    def has(self, persona_id: int) -> bool:
        return persona_id in self.members

    def file(self, file_id: str) -> bytes | None:
        return self.emulator.media.get(file_id)

    # -- what the pane shows -----------------------------------------------------------------------------

    def chat(self, persona_id: int) -> dict[str, Any]:
        member = self.members[persona_id]
        inbox, dates = member.inbox, self._dates.get(member.userid, [])
        sent = self._sent[persona_id]
        messages: list[dict[str, Any]] = []
        for index, received in enumerate(inbox):
            messages += [s.shown for s in sent if s.after == index]
            messages.append(_shown(received, index + 1, dates[index] if index < len(dates) else None))
        messages += [s.shown for s in sent if s.after >= len(inbox)]
        # The app's menu (README: keys duty, tasks, patrol), offered where the Telegram pane lists commands.
        menu = bot_commands(WECOM_MENU, self.ctx.settings.default_locale)
        return {"channel": self.name, "messages": messages, "reply_keyboard": None, "toasts": [], "commands": menu}

    # -- what the member does ----------------------------------------------------------------------------

    async def send_text(self, persona_id: int, text: str) -> dict[str, Any]:
        member = self.members[persona_id]
        if text.startswith("/") and text[1:] in WECOM_MENU:  # a menu item of the pane: the app's menu click
            return self._answered(persona_id, await member.click_menu(text[1:]))
        return await self._post(persona_id, member.message("text", Content=text), {"text": text, "entities": []})

    async def press(self, persona_id: int, message_id: int, data: str) -> dict[str, Any]:
        member = self.members[persona_id]
        inbox = member.inbox
        if not 1 <= message_id <= len(inbox):
            raise PersonaError("message_gone", "that message is gone")
        card = inbox[message_id - 1]
        text = next((t for t, key in card.buttons.items() if key == data), None)
        if text is None:
            raise PersonaError("button_gone", "that button is no longer there")
        response = await member.press(card, text)
        return self._answered(persona_id, response)

    async def send_location(self, persona_id: int, latitude: float, longitude: float) -> dict[str, Any]:
        member = self.members[persona_id]
        xml = member.message("location", Location_X=f"{latitude:.6f}", Location_Y=f"{longitude:.6f}", Scale="15",
                             Label="")
        return await self._post(persona_id, xml, {"location": {"latitude": latitude, "longitude": longitude,
                                                                "live": False, "accuracy": None}})

    async def send_photo(self, persona_id: int, jpeg: bytes, caption: str | None) -> dict[str, Any]:
        """An image message; WeCom images carry no caption, so a caption follows as a text message."""
        member = self.members[persona_id]
        media_id = self.emulator.store_media(jpeg)
        xml = member.message("image", PicUrl=f"{self.emulator.base_url}/pic/{media_id}", MediaId=media_id)
        answer = await self._post(persona_id, xml, {"photo": {"file_id": media_id, "width": None, "height": None}})
        return await self.send_text(persona_id, caption) if caption else answer

    async def _post(self, persona_id: int, xml: str, shown: dict[str, Any]) -> dict[str, Any]:
        member, sent = self.members[persona_id], self._sent[persona_id]
        entry = _Sent(len(member.inbox), {"id": MEMBER_IDS + len(sent) + 1, "mine": True,
                                          "date": int(self.ctx.clock.now().timestamp()), "edited": False, **shown})
        sent.append(entry)  # shown before the app's answer to it can arrive
        try:
            response = await member.post(xml)
            if response.status_code != 200:
                raise PersonaError("refused", f"the callback was refused: {response.status_code} {response.text}")
        except PersonaError:
            sent.remove(entry)
            raise
        except httpx.HTTPError as exc:
            sent.remove(entry)
            raise PersonaError("refused", f"the callback did not reach OneGrid: {exc!r}") from exc
        finally:
            self._changed(persona_id)
        return {"update_id": None}

    def _answered(self, persona_id: int, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise PersonaError("refused", f"the callback was refused: {response.status_code} {response.text}")
        self._changed(persona_id)
        return {"update_id": None}


def _shown(received: Received, message_id: int, date: int | None) -> dict[str, Any]:
    """One message the app sent, as the console page renders it."""
    shown: dict[str, Any] = {"id": message_id, "mine": False, "date": date, "edited": False}
    if received.msgtype == "image":
        shown["photo"] = {"file_id": received.body["image"]["media_id"], "width": None, "height": None}
        return shown
    shown["text"], shown["entities"] = received.text, []
    if received.buttons:
        shown["inline_keyboard"] = [[{"text": text, "callback_data": key}] for text, key in received.buttons.items()]
    return shown
