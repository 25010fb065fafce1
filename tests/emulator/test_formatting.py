"""Markup parsing checked against aiogram's own formatting: what aiogram writes, we read back."""

from __future__ import annotations

import pytest
from aiogram.utils.formatting import Bold, Code, Italic, Spoiler, Strikethrough, Text, Underline
from aiogram.utils.text_decorations import html_decoration, markdown_decoration
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.emulator.errors import ApiError
from bot.emulator.formatting import format_text, utf16_len

DECORATIONS = (Bold, Italic, Underline, Strikethrough, Spoiler)
# No "/", "#", "@" or "w": those would make Telegram (and us) detect commands, tags and URLs.
plain = st.text(alphabet=list("abcXYZ 019<>&\"'.!-=()[]{}_*~|`+\\\n") + ["网", "格", "😀"], min_size=1, max_size=8)


@st.composite
def parts(draw, depth: int = 0, banned: frozenset = frozenset()) -> list:
    """Text pieces, nested up to two levels, never nesting an entity inside its own kind
    (Telegram cannot express that in MarkdownV2)."""
    pieces: list = []
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.integers(0, 4)) if depth < 2 else 0
        allowed = [d for d in DECORATIONS if d not in banned]
        if choice >= 3 and allowed:
            decoration = draw(st.sampled_from(allowed))
            pieces.append(decoration(*draw(parts(depth + 1, banned | {decoration}))))
        elif choice == 2 and depth == 0:  # code holds no other entities on Telegram
            pieces.append(Code(draw(plain)))
        else:
            pieces.append(draw(plain))
    return pieces


def as_tuples(entities) -> list[tuple]:
    rows = [(e["type"], e["offset"], e["length"]) if isinstance(e, dict) else (e.type, e.offset, e.length)
            for e in entities]
    return sorted(rows)


@settings(max_examples=150, deadline=None)
@given(parts())
def test_html_and_markdown_v2_written_by_aiogram_parse_back(pieces: list) -> None:
    expected = Text(*pieces).as_kwargs()
    assume(expected["text"] == expected["text"].strip())
    # outer entities first, as Telegram orders them (aiogram's Text.as_html mis-nests otherwise)
    entities = sorted(expected["entities"], key=lambda e: (e.offset, -e.length))
    html = html_decoration.unparse(expected["text"], entities)
    markdown = markdown_decoration.unparse(expected["text"], entities)

    for markup, mode in ((html, "HTML"), (markdown, "MarkdownV2")):
        parsed = format_text(markup, mode)
        assert parsed.text == expected["text"], (mode, markup)
        assert as_tuples(parsed.entities) == as_tuples(expected["entities"]), (mode, markup)


def test_offsets_are_utf16_code_units() -> None:
    parsed = format_text("😀 <b>网格</b> /start", "HTML")

    assert parsed.entities == [
        {"type": "bold", "offset": 3, "length": 2},
        {"type": "bot_command", "offset": 6, "length": 6},
    ]
    assert utf16_len("😀") == 2


@pytest.mark.parametrize(
    ("text", "mode", "error"),
    [
        ("<b>bold", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", "HTML", 'expected "</b>", found "</i>"'),
        ("<blink>x</blink>", "HTML", 'Unsupported start tag "blink" at byte offset 0'),
        ("网格 *A", "MarkdownV2", "Can't find end of Bold entity at byte offset 7"),
        ("Case #7", "MarkdownV2", "Character '#' is reserved"),
        ("[link](http://x.org", "MarkdownV2", "Can't find end of a URL"),
    ],
)
def test_broken_markup_is_refused_like_telegram(text: str, mode: str, error: str) -> None:
    with pytest.raises(ApiError) as raised:
        format_text(text, mode)
    assert raised.value.status == 400
    assert raised.value.description.startswith("Bad Request: can't parse entities: ")
    assert error in raised.value.description


def test_links_code_blocks_and_quotes() -> None:
    html = format_text(
        '<a href="https://grid.example/c/7">case 7</a>\n<pre><code class="language-json">{}</code></pre>', "HTML"
    )
    markdown = format_text(">first\n>second\n```python\nx = 1\n```", "MarkdownV2")

    assert html.entities[0] == {"type": "text_link", "offset": 0, "length": 6, "url": "https://grid.example/c/7"}
    assert html.entities[1] == {"type": "pre", "offset": 7, "length": 2, "language": "json"}
    assert markdown.text == "first\nsecond\nx = 1"
    assert markdown.entities == [
        {"type": "blockquote", "offset": 0, "length": 12},
        {"type": "pre", "offset": 13, "length": 5, "language": "python"},
    ]
