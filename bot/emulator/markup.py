"""Building blocks of the emulator's markup parsers: UTF-16 lengths, the parsed result, its builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.emulator.errors import ApiError, bad_request


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, Telegram's unit for lengths and offsets."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class FormattedText:
    """Text without markup and its entities, offsets in UTF-16 units."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def sort_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entities in Telegram's order: by offset, the longer first."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def cant_parse(message: str) -> ApiError:
    """The 400 Telegram answers for broken markup."""
    return bad_request(f"can't parse entities: {message}")


class TextBuilder:
    """Accumulates output text and tracks its length in UTF-16 units."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos += utf16_len(chunk)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start, **extra})

    def result(self) -> FormattedText:
        return FormattedText("".join(self.parts), sort_entities(self.entities))
