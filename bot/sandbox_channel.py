"""Another messenger a console pane can run on instead of the Bot API emulator (sandbox mode).

bot/ knows no other channel: the wiring (onegrid/sandbox_wecom.py for WeCom / 政务微信) hands the
`Sandbox` an object of this shape, and the sandbox passes each action of the personas it names to it.

What callers may rely on: `chat()` answers in the shape the console page renders (see
api/console.render_chat), with `channel` naming the messenger; every action is made as that
messenger's app makes it and answers a dict (its `update_id` may be None); refusals raise
bot.sandbox.PersonaError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class PaneChannel(Protocol):
    name: str  # "wecom": what the console marks the pane with

    async def start(self, persona_keys: dict[str, int], changed: Callable[[int], None]) -> None:
        """Start after the demo people are seeded; `persona_keys` maps a demo key to its persona id;
        `changed(persona_id)` is to be called whenever that persona's chat changes (the console follows it)."""

    async def stop(self) -> None: ...

    def has(self, persona_id: int) -> bool: ...

    def chat(self, persona_id: int) -> dict[str, Any]: ...

    async def send_text(self, persona_id: int, text: str) -> dict[str, Any]: ...

    async def press(self, persona_id: int, message_id: int, data: str) -> dict[str, Any]: ...

    async def send_location(self, persona_id: int, latitude: float, longitude: float) -> dict[str, Any]: ...

    async def send_photo(self, persona_id: int, jpeg: bytes, caption: str | None) -> dict[str, Any]: ...

    def file(self, file_id: str) -> bytes | None: ...
