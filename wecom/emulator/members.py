"""A WeCom member as the app sees them: what they send arrives as an encrypted callback (接收消息与事件)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

import httpx

from wecom.emulator.cipher import encrypt, envelope, signature
from wecom.emulator.server import Received, WecomEmulator


class WecomMember:
    def __init__(self, emulator: WecomEmulator, userid: str, *, now: Callable[[], float] | None = None) -> None:
        self.emu, self.userid = emulator, userid
        self._now = now or emulator.now

    @property
    def inbox(self) -> list[Received]:
        return self.emu.inbox(self.userid)

    # -- what a member does ------------------------------------------------------------------------------------

    async def send_text(self, content: str) -> httpx.Response:
        return await self.post(self.message("text", Content=content))

    async def send_image(self, data: bytes) -> httpx.Response:
        media_id = self.emu.store_media(data)
        return await self.post(self.message("image", PicUrl=f"{self.emu.base_url}/pic/{media_id}", MediaId=media_id))

    async def send_location(self, lat: float, lon: float, label: str = "") -> httpx.Response:
        return await self.post(self.message("location", Location_X=f"{lat:.6f}", Location_Y=f"{lon:.6f}", Scale="15",
                                            Label=label))

    async def click_menu(self, key: str) -> httpx.Response:
        return await self.post(self.event("click", EventKey=key))

    async def press(self, card: Received, button_text: str) -> httpx.Response:
        """Press a template card's button (模板卡片事件推送)."""
        return await self.post(self.event("template_card_event", EventKey=card.buttons[button_text],
                                          TaskId=card.task_id or "", CardType="button_interaction",
                                          ResponseCode=card.response_code or ""))

    # -- building and posting callbacks --------------------------------------------------------------------------

    def message(self, msg_type: str, **fields: str) -> str:
        return self._xml(msg_type, {**fields, "MsgId": self.emu.next_msg_id()})

    def event(self, event: str, **fields: str) -> str:
        return self._xml("event", {"Event": event, **fields})

    def _xml(self, msg_type: str, fields: dict[str, Any]) -> str:
        head = {"ToUserName": self.emu.corp_id, "FromUserName": self.userid, "CreateTime": str(int(self._now())),
                "MsgType": msg_type}
        items = {**head, **fields, "AgentID": str(self.emu.agent_id)}
        return "<xml>" + "".join(f"<{k}><![CDATA[{escape(str(v))}]]></{k}>" for k, v in items.items()) + "</xml>"

    def sealed(self, xml: str, *, token: str | None = None) -> tuple[dict[str, str], str]:
        """(query, body) of the callback carrying `xml`; a wrong `token` makes a bad signature."""
        encrypted = encrypt(self.emu.encoding_aes_key, self.emu.corp_id, xml)
        timestamp, nonce = str(int(self._now())), secrets.token_hex(5)
        query = {"msg_signature": signature(token or self.emu.token, timestamp, nonce, encrypted),
                 "timestamp": timestamp, "nonce": nonce}
        return query, envelope(to_user=self.emu.corp_id, agent_id=self.emu.agent_id, encrypt_b64=encrypted)

    async def post(self, xml: str, *, token: str | None = None) -> httpx.Response:
        query, body = self.sealed(xml, token=token)
        return await self.post_sealed(query, body)

    async def post_sealed(self, query: dict[str, str], body: str) -> httpx.Response:
        if self.emu.callback_url is None:
            raise RuntimeError("set the emulator's callback_url to OneGrid's /wecom/callback first")
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(self.emu.callback_url, params=query, content=body.encode("utf-8"),
                                   headers={"Content-Type": "text/xml"})
