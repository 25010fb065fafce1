"""Masking of personal data (PIPL): how staff cards, work orders and API answers show a resident.

One implementation for the whole product, so a work order, a supervisor card and an API answer
never disagree about what is hidden. Both functions return "" for a missing value; callers choose
their own placeholder.
"""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D+")


def mask_phone(phone: str | None) -> str:
    """`13812341234` (or `+86 138 1234 1234`) → `138****1234`; numbers under 8 digits are all stars."""
    digits = _NON_DIGITS.sub("", phone or "")
    if len(digits) == 13 and digits.startswith("86"):  # +86 country code before a mainland mobile number
        digits = digits[2:]
    if len(digits) < 8:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_name(name: str | None) -> str:
    """The first character and one or two stars, whatever the length: 王小明 → 王**, Alexander → A**."""
    name = (name or "").strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, min(len(name) - 1, 2))
