"""Logging of every OneGrid process, configured in one place: structlog over the standard logging.

`configure_logging(settings)` installs ONE handler on the root logger, so our own lines and those of
uvicorn, SQLAlchemy, aiogram, Alembic and APScheduler share one formatter:

- JSON, one object per line, when stderr is not a terminal (a service manager, a container, a pipe);
  readable coloured lines on a terminal. `ONEGRID_LOG_FORMAT=json|console` overrides the guess.
- Every line of an HTTP request carries `request_id` (asgi-correlation-id's middleware, also
  returned as `X-Request-ID`); lines about a case carry `case` (bound by the services with
  `structlog.contextvars`).
- Every line is scrubbed before it is written: API keys, tokens, bot tokens, Authorization
  headers, passwords in URLs, phone and ID-card numbers. uvicorn's access log is scrubbed by a
  filter on its own logger too, so a query string's `api_key=` never reaches a handler whole.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import uuid
from typing import Any, TextIO

import structlog
from asgi_correlation_id import correlation_id

from onegrid.settings import Settings

REDACTED = "[redacted]"

# Values after these names are secrets, in query strings (`api_key=…`), headers (`Authorization: Bearer …`)
# and JSON-ish text (`"token": "…"`). A value starting with "<" is a placeholder in a hint, kept; one already
# redacted is left alone (a line may pass the scrubber more than once).
_SECRET_NAME = r"[A-Za-z0-9_-]*(?:api_key|apikey|token|secret|password|passwd|authorization|signature)"
_SECRET_VALUE = re.compile(
    rf"(?i)(?<![A-Za-z0-9_-])({_SECRET_NAME}[\"']?\s*[=:]\s*[\"']?)(?!<|\[redacted\])(?:(?:bearer|basic|token)\s+)?[^\s\"'&,;)}}\]]+")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_SECRET_VALUE, rf"\1{REDACTED}"),
    (re.compile(r"\d{5,15}:[A-Za-z0-9_-]{30,}"), "[bot-token]"),  # Telegram bot tokens, also inside /bot<token>/
    (re.compile(r"(?<![A-Za-z0-9])og_[A-Za-z0-9]+_[A-Za-z0-9_-]{8,}"), "og_[redacted]"),  # our API keys (services/api_keys.py)
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"), f"Bearer {REDACTED}"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), rf"\1{REDACTED}@"),  # password in a database URL
    # Chinese resident ID numbers (18 characters, the last may be X), before phones: they contain digit runs.
    (re.compile(r"(?<![A-Za-z0-9])\d{17}[\dXx](?![A-Za-z0-9])"), "[id-number]"),
    # Mobile numbers of the mainland (optionally +86), and other international numbers written with "+".
    (re.compile(r"(?<![A-Za-z0-9+])(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?![A-Za-z0-9])"), "[phone]"),
    (re.compile(r"(?<![A-Za-z0-9])\+\d{1,3}[- ]?\d{2,4}[- ]?\d{3,4}[- ]?\d{2,4}(?![A-Za-z0-9])"), "[phone]"),
)
_SECRET_KEY = re.compile(rf"(?i)^{_SECRET_NAME}$|^(?:phone|phone_number|id_number|cookie|set-cookie)$")


def scrub(text: str) -> str:
    """`text` with every secret and phone / ID number replaced; safe to call on any log text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(str(value))


def scrub_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: every value of the line scrubbed, values under secret-sounding keys dropped."""
    return {k: REDACTED if _SECRET_KEY.search(k) else _scrub_value(v) for k, v in event_dict.items()}


def drop_color_message(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: uvicorn's `color_message` extra repeats the message with terminal escapes."""
    event_dict.pop("color_message", None)
    return event_dict


def add_request_id(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the id of the HTTP request this line belongs to, if any."""
    request_id = correlation_id.get()
    if request_id:
        event_dict.setdefault("request_id", request_id)
    return event_dict


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs a record's message in place (uvicorn's access log carries query strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # a structlog line: its event dict is scrubbed by `scrub_event`
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is still logged, as its raw msg
            message = str(record.msg)
        record.msg, record.args = scrub(message), ()
        return True


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def is_sane_request_id(value: str) -> bool:
    """An incoming X-Request-ID is kept when it is 8-128 characters of letters, digits and . _ : -."""
    return bool(_REQUEST_ID.match(value))


def new_request_id() -> str:
    """A request id for a request that brought none: a random UUID4 in hex, as asgi-correlation-id makes,
    from the process's pseudo-random generator. It only ties log lines together, so it needs no secret
    randomness; `uuid4()` asks the kernel (a system call that lets go of the GIL) on every request."""
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


def _renderer(fmt: str, stream: TextIO) -> Any:
    if fmt == "auto":
        fmt = "console" if _isatty(stream) else "json"
    if fmt == "json":
        return structlog.processors.JSONRenderer(ensure_ascii=False)
    return structlog.dev.ConsoleRenderer(colors=_isatty(stream))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(settings: Settings, *, stream: TextIO | None = None, level: int | str | None = None) -> None:
    """Send every logger of the process through one scrubbing structlog formatter on `stream` (stderr).

    Safe to call again (tests, a second command): the handler installed before is replaced.
    """
    stream = stream if stream is not None else sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_event,
            _renderer(settings.log_format, stream),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ScrubFilter())
    handler.set_name("onegrid")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "onegrid"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if level is not None else settings.log_level.upper())
    # Every scheduler tick would otherwise log a line and bury what matters.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ScrubFilter) for f in access.filters):
        access.addFilter(ScrubFilter())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through the root handler, not their own
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
