"""Shared pieces of the API's read services: pages with opaque cursors and the "not visible" refusal.

What callers may rely on: a cursor names the last id of a page and is only ever decoded from what
`encode_cursor` gave out (anything else raises `BadCursor`); `NotVisible` means "does not exist, or
lies outside the caller's area" — the two are deliberately indistinguishable.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class NotVisible(LookupError):
    """The thing does not exist or lies outside the caller's area; `what` names the kind ("case", "area"...)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class BadCursor(ValueError):
    """The cursor is not one a page gave out."""


class BadFilter(ValueError):
    """A filter value the store does not know; `field` and `value` say which."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field}={value!r}")
        self.field, self.value = field, value


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page, newest first; `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor names; raises `BadCursor` for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["before"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadCursor(cursor) from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadCursor(cursor)
    return value

