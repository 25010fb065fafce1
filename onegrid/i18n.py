"""Translations outside an update's context (services, scheduled jobs, the sender).

Handlers use aiogram's i18n middleware; code that renders a message for someone else
(a notification written by a service) picks the recipient's catalogue explicitly here.
Both read the same compiled catalogues in locales/<lang>/LC_MESSAGES/messages.mo.
"""

from __future__ import annotations

import gettext as _gettext
from functools import lru_cache
from pathlib import Path

from services.locales import DEFAULT, SUPPORTED, normalize_locale

__all__ = ["DEFAULT", "DOMAIN", "LOCALES_DIR", "SUPPORTED", "N_", "gettext_for", "normalize_locale"]

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


@lru_cache(maxsize=8)
def _translation(locale: str) -> _gettext.NullTranslations:
    return _gettext.translation(DOMAIN, localedir=LOCALES_DIR, languages=[locale], fallback=True)


def gettext_for(locale: str):  # noqa: ANN201 - returns the catalogue's gettext function
    """The `gettext` of `locale` (unknown locales fall back to the untranslated English ids)."""
    return _translation(locale if locale in SUPPORTED else DEFAULT).gettext


def N_(message: str) -> str:  # noqa: N802 - the conventional name for "mark for extraction"
    """Marks a string for extraction without translating it now."""
    return message
