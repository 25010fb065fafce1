"""The WeCom callback URL (接收消息服务器): `GET` verifies the URL, `POST` receives messages and events.

What WeCom and callers may rely on:
- GET answers the decrypted `echostr` when `msg_signature` matches, else 403.
- POST checks `msg_signature` over (Token, timestamp, nonce, Encrypt) and decrypts; a bad signature or a
  ciphertext for another corp is refused with 403 and nothing is stored. A readable callback is stored in
  the durable inbox (channel "wecom", key MsgId, or FromUserName+CreateTime+event for events) before the
  200 answer, so a redelivery (WeCom retries for 5 s three times) has one effect; the inbox processor
  then hands it to wecom/handlers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from wecom.crypto import BadSignature, CallbackCrypto
from wecom.formats import BadCallback, Inbound, inbound_from_xml

MAX_BODY = 64 * 1024  # a callback is a small XML packet


def build_router(crypto: CallbackCrypto, store: Callable[[Inbound], bool], wake: Callable[[], None]) -> APIRouter:
    """`store(inbound)` commits the callback (True: new, False: a redelivery); `wake()` starts processing."""
    router = APIRouter(tags=["wecom"])

    @router.get("/wecom/callback", response_class=PlainTextResponse)
    async def verify_url(msg_signature: str = Query(...), timestamp: str = Query(...), nonce: str = Query(...),
                         echostr: str = Query(...)) -> PlainTextResponse:
        try:
            plain = crypto.verify_url(msg_signature=msg_signature, timestamp=timestamp, nonce=nonce, echostr=echostr)
        except BadSignature:
            return PlainTextResponse("invalid signature", status_code=403)
        return PlainTextResponse(plain)

    @router.post("/wecom/callback", response_class=PlainTextResponse)
    async def receive(request: Request, msg_signature: str = Query(...), timestamp: str = Query(...),
                      nonce: str = Query(...)) -> PlainTextResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("too large", status_code=413)
        try:
            plain = crypto.decrypt(body.decode("utf-8", errors="replace"), msg_signature=msg_signature,
                                   timestamp=timestamp, nonce=nonce)
            inbound = inbound_from_xml(plain)
        except BadSignature:
            return PlainTextResponse("invalid signature", status_code=403)
        except BadCallback as exc:
            return PlainTextResponse(str(exc), status_code=400)
        if await asyncio.to_thread(store, inbound):
            wake()
        return PlainTextResponse("")  # an empty 200: no passive reply; answers go through message/send

    return router
