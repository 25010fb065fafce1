"""The WeCom server API for OneGrid: gettoken, message/send, media/upload, media/get.

What callers may rely on:
- The access token is fetched once, cached, and fetched again `TOKEN_MARGIN` before `expires_in` runs out
  (by the injected clock), or at once when WeCom answers 40014 / 42001 (the call is then repeated once).
- 45009 (frequency limit), -1 (system busy) and HTTP 5xx / transport errors are retried in the call with
  exponential waits (tenacity, with an injectable sleep); if they outlast `attempts`, `RetryLater` is raised
  and the sender keeps the row for later. Any other errcode raises `Rejected` (the row is dead-lettered).

wechatpy's `WeChatClient` is not used: it is synchronous (requests) and times its token by the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from onegrid.clock import Clock
from wecom.formats import ERR_OK, RETRY_ERRORS, TOKEN_ERRORS

TOKEN_MARGIN = timedelta(minutes=5)


class WecomError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeCom error {errcode}: {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


class RetryLater(WecomError):
    """A limit or a fault that outlasted the in-call retries; try the message again later."""


class Rejected(WecomError):
    """WeCom refused the request for good (bad recipient, bad body): dead-letter it."""


class _TokenStale(Exception):
    pass


class WecomClient:
    def __init__(self, *, api_base: str, corp_id: str, secret: str, clock: Clock, http: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, attempts: int = 5,
                 max_wait_s: float = 30.0) -> None:
        self._base = api_base.rstrip("/")
        self._corp_id, self._secret = corp_id, secret
        self._clock = clock
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0))
        self.sleep = sleep
        self._attempts, self._max_wait_s = attempts, max_wait_s
        self._token: str | None = None
        self._token_until: datetime | None = None
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0  # how often gettoken was called (status and tests)

    def point_at(self, api_base: str) -> None:
        """Send from now on to `api_base` (the sandbox's emulator, known only once it listens)."""
        self._base = api_base.rstrip("/")

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- access token ------------------------------------------------------------------------------------

    async def access_token(self) -> str:
        async with self._token_lock:
            if self._token is None or self._token_until is None or self._clock.now() >= self._token_until:
                data = await self._retrying(lambda: self._get_json("/cgi-bin/gettoken", {
                    "corpid": self._corp_id, "corpsecret": self._secret}))
                self.token_fetches += 1
                self._token = data["access_token"]
                self._token_until = self._clock.now() + timedelta(seconds=int(data.get("expires_in", 7200))) - TOKEN_MARGIN
            return self._token

    def _forget_token(self, token: str) -> None:
        if self._token == token:
            self._token = None

    # -- calls ---------------------------------------------------------------------------------------------

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST message/send; returns WeCom's answer (`msgid`, and `response_code` for cards)."""
        return await self._with_token(lambda token: self._post_json("/cgi-bin/message/send", token, body))

    async def upload_image(self, path: Path) -> str:
        """media/upload type=image; returns the media_id (valid three days at WeCom)."""
        data = path.read_bytes()

        async def call(token: str) -> dict[str, Any]:
            response = await self._http.post(f"{self._base}/cgi-bin/media/upload",
                                             params={"access_token": token, "type": "image"},
                                             files={"media": (path.name, data, "image/jpeg")})
            return self._check(response)
        return (await self._with_token(call))["media_id"]

    async def download_media(self, media_id: str) -> bytes:
        """media/get: the file's bytes (an error comes back as JSON)."""
        async def call(token: str) -> dict[str, Any]:
            response = await self._http.get(f"{self._base}/cgi-bin/media/get",
                                            params={"access_token": token, "media_id": media_id})
            if response.headers.get("content-type", "").startswith(("application/json", "text/plain")):
                return self._check(response)
            if response.status_code >= 500:
                raise RetryLater(response.status_code, "HTTP error")
            return {"content": response.content}
        return (await self._with_token(call))["content"]

    # -- plumbing --------------------------------------------------------------------------------------------

    async def _with_token(self, call: Callable[[str], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            token = await self.access_token()
            try:
                return await call(token)
            except _TokenStale:
                self._forget_token(token)
                return await call(await self.access_token())
        try:
            return await self._retrying(once)
        except _TokenStale as exc:
            raise RetryLater(42001, "access token refused twice") from exc

    async def _retrying(self, fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        retrying = AsyncRetrying(retry=retry_if_exception_type(RetryLater), stop=stop_after_attempt(self._attempts),
                                 wait=wait_exponential(multiplier=1, max=self._max_wait_s), sleep=lambda s: self.sleep(s),
                                 reraise=True)
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable")

    async def _get_json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._http.get(f"{self._base}{path}", params=params)
        except httpx.TransportError as exc:
            raise RetryLater(-1, f"transport: {exc!r}") from exc
        return self._check(response)

    async def _post_json(self, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(f"{self._base}{path}", params={"access_token": token}, json=body)
        except httpx.TransportError as exc:
            raise RetryLater(-1, f"transport: {exc!r}") from exc
        return self._check(response)

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 500:
            raise RetryLater(response.status_code, "HTTP error")
        try:
            data = response.json()
        except ValueError as exc:
            raise Rejected(response.status_code, "not JSON") from exc
        code = int(data.get("errcode", ERR_OK))
        if code == ERR_OK:
            return data
        if code in TOKEN_ERRORS:
            raise _TokenStale()
        if code in RETRY_ERRORS:
            raise RetryLater(code, str(data.get("errmsg", "")))
        raise Rejected(code, str(data.get("errmsg", "")))
