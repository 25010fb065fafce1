"""Which languages OneGrid speaks, and how a messenger's language code maps onto them (no text here)."""

from __future__ import annotations

SUPPORTED = ("zh_CN", "en")
DEFAULT = "zh_CN"


def normalize_locale(language_code: str | None, default: str = DEFAULT) -> str:
    """Map a messenger's language code to a supported locale: zh* → zh_CN, anything else → en."""
    if not language_code:
        return default
    code = language_code.replace("-", "_").lower()
    if code.startswith("zh"):
        return "zh_CN"
    return "en"
