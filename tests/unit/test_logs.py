"""onegrid/logs.py: the format follows the terminal unless a setting says otherwise, and no secret survives.

The end-to-end check (a real `onegrid serve`, its request ids and case numbers) is tests/api/test_ops_logs.py.
"""

from __future__ import annotations

import io
import json
import logging
import string

import pytest
import structlog
from hypothesis import given, settings as hsettings, strategies as st

from onegrid.logs import configure_logging, scrub
from onegrid.settings import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging():  # noqa: ANN201
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.parametrize(("stream", "fmt", "json_expected"), [
    (io.StringIO, "auto", True), (Terminal, "auto", False), (Terminal, "json", True), (io.StringIO, "console", False),
])
def test_the_format_follows_the_terminal_unless_set(restore_logging, stream, fmt, json_expected) -> None:  # noqa: ANN001
    out = stream()
    configure_logging(Settings(_env_file=None, log_format=fmt), stream=out)
    logging.getLogger("onegrid.test").info("case registered", extra={"case": "SH-20261204-000001"})
    structlog.get_logger("onegrid.test").warning("relay slow", api_key="og_k1_supersecretvalue99")
    lines = out.getvalue().strip().splitlines()
    if json_expected:
        first, second = (json.loads(line) for line in lines)
        assert first["event"] == "case registered" and first["case"] == "SH-20261204-000001"
        assert first["level"] == "info" and first["logger"] == "onegrid.test"
        assert second["api_key"] == "[redacted]"
    else:
        assert "case registered" in lines[0] and "SH-20261204-000001" in lines[0]
        with pytest.raises(json.JSONDecodeError):
            json.loads(lines[0])
    assert "supersecretvalue99" not in out.getvalue()


SECRET_CHARS = string.ascii_letters + string.digits
api_keys = st.builds(lambda i, s: f"og_{i}_{s}", st.text("0123456789abcdef", min_size=6, max_size=12),
                     st.text(SECRET_CHARS + "-_", min_size=20, max_size=43))
bot_tokens = st.builds(lambda n, s: f"{n}:{s}", st.integers(10**7, 10**10), st.text(SECRET_CHARS + "-_", min_size=35,
                                                                                     max_size=35))
phones = st.builds(lambda p, rest: f"1{p}{rest}", st.sampled_from("3456789"), st.text(string.digits, min_size=9,
                                                                                       max_size=9))
opaque = st.text(SECRET_CHARS, min_size=12, max_size=40)
TEMPLATES = [
    "GET /open311/v2/requests.json?api_key={} HTTP/1.1",
    "POST /open311/v2/requests.json?jurisdiction_id=sh&api_key={}&service_code=x",
    "headers: {{'authorization': 'Bearer {}'}}",
    "Authorization: Bearer {}",
    '{{"token": "{}", "n": 1}}',
    "https://api.telegram.org/bot{}/getUpdates",
    "居民说电话{}，请回电",
    "upstream refused: secret={}",
    "参数token={}&x=1",
    "postgresql+psycopg://onegrid:{}@db.internal/onegrid",
]


NOT_A_BOT_URL = [t for t in TEMPLATES if "/bot{}" not in t]  # only a bot token has its place in a Bot API URL


@hsettings(max_examples=300, deadline=None)
@given(data=st.one_of(st.tuples(bot_tokens, st.sampled_from(TEMPLATES)),
                      st.tuples(st.one_of(api_keys, phones), st.sampled_from(NOT_A_BOT_URL))))
def test_no_key_token_or_phone_survives_the_scrubber(data: tuple[str, str]) -> None:
    secret, template = data
    line = template.format(secret)
    assert secret not in scrub(line)
    assert scrub(scrub(line)) == scrub(line)  # a line scrubbed twice (filter, then processor) reads the same


@hsettings(max_examples=100, deadline=None)
@given(value=opaque, template=st.sampled_from([t for t in NOT_A_BOT_URL if "电话" not in t]))
def test_any_value_in_a_secret_place_is_removed(value: str, template: str) -> None:
    assert value not in scrub(template.format(value))


def test_what_operators_need_stays_readable() -> None:
    line = ("case SH-20261121-000123 registered at 2026-12-04T18:49:59.700135Z, request 6a1e957e9b3e4d04bac0b911ecda592a;"
            " set ONEGRID_BOT_TOKEN=<token from @BotFather> to enable the bot")
    assert scrub(line) == line
