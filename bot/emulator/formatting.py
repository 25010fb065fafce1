"""Message text the way Telegram stores it: markup parsed into entities, whitespace trimmed.

What callers may rely on:
- `format_text(text, parse_mode, entities)` returns the text and entities Telegram would put in
  the sent Message: HTML / MarkdownV2 / Markdown markup removed and turned into entities with
  UTF-16 offsets, leading and trailing whitespace trimmed, and URLs, e-mails, @mentions,
  #hashtags and /commands detected as Telegram does for plain text.
- Broken markup raises `ApiError(400, "Bad Request: can't parse entities: ...")`, the error a
  bot gets from Telegram for an unescaped `<` in HTML or `.` in MarkdownV2.
- Lengths are counted in UTF-16 code units (`utf16_len`), like entity offsets.

Not modelled: every corner of Telegram's parsers (e.g. `___` ambiguity in MarkdownV2,
domain names without a scheme are not detected as URLs).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from bot.emulator.errors import bad_request
from bot.emulator.markdown import MarkdownParser
from bot.emulator.markup import FormattedText, TextBuilder, cant_parse, sort_entities, utf16_len

__all__ = ["FormattedText", "detect_entities", "format_text", "utf16_len"]

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ATTR_RE = re.compile(r"""\s*([a-zA-Z][\w-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_CHAR_REF_RE = re.compile(r"&(#[xX][0-9a-fA-F]+|#\d+|[a-zA-Z]+);")
_HTML_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

# Plain-text entities Telegram detects by itself, most specific first.
_AUTO_PATTERNS = [
    ("url", re.compile(r"(?<![\w@/])(?:https?://|www\.)[^\s<>\"]+")),
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("bot_command", re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])")),
    ("mention", re.compile(r"(?<![\w@])@[a-zA-Z0-9_]{4,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d_]\w*")),
]
_NO_AUTO_INSIDE = frozenset({"code", "pre", "text_link", "url", "email", "bot_command", "mention", "hashtag"})


def format_text(text: str, parse_mode: str | None = None, entities: list[dict] | None = None) -> FormattedText:
    """Parse `text` as Telegram does for sendMessage/editMessageText/captions (see module doc)."""
    if entities is not None:
        result = FormattedText(text, [dict(e) for e in entities])
    elif parse_mode:
        mode = parse_mode.lower()
        if mode == "html":
            result = _parse_html(text)
        elif mode == "markdownv2":
            result = MarkdownParser(text, v2=True).parse()
        elif mode == "markdown":
            result = MarkdownParser(text, v2=False).parse()
        else:
            raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    else:
        result = FormattedText(text, [])
    result = _strip(result)
    result.entities = sort_entities(result.entities + detect_entities(result.text, result.entities))
    return result


def detect_entities(text: str, existing: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """URLs, e-mails, /commands, @mentions and #hashtags in `text` not inside `existing` ones."""
    taken = [(e["offset"], e["offset"] + e["length"]) for e in existing or [] if e["type"] in _NO_AUTO_INSIDE]
    offsets = _utf16_offsets(text)
    found: list[dict[str, Any]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if kind == "url":
                end = start + len(match.group().rstrip(".,;:!?)'\""))
            begin16, end16 = offsets[start], offsets[end]
            if any(begin16 < stop and start_ < end16 for start_, stop in taken):
                continue
            taken.append((begin16, end16))
            found.append({"type": kind, "offset": begin16, "length": end16 - begin16})
    return found


def _utf16_offsets(text: str) -> list[int]:
    """offsets[i] = UTF-16 offset of code point i (with one entry past the end)."""
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return offsets


def _strip(formatted: FormattedText) -> FormattedText:
    text = formatted.text
    stripped = text.strip()
    if stripped == text:
        return formatted
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    entities = []
    for entity in formatted.entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return FormattedText(stripped, entities)


# -- HTML -------------------------------------------------------------------------------


@dataclass
class _OpenTag:
    name: str
    kind: str
    start: int
    extra: dict[str, Any]


def _parse_html(src: str) -> FormattedText:
    out = TextBuilder()
    stack: list[_OpenTag] = []
    i = 0

    def byte_offset(index: int) -> int:
        return len(src[:index].encode("utf-8"))

    while i < len(src):
        char = src[i]
        if char == "&":
            match = _HTML_CHAR_REF_RE.match(src, i)
            if match and (match.group(1).startswith("#") or match.group(1) in _HTML_NAMED_REFS):
                name = match.group(1)
                out.add(_HTML_NAMED_REFS[name] if name in _HTML_NAMED_REFS else html.unescape(match.group()))
                i = match.end()
            else:
                out.add("&")
                i += 1
            continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        close = src.find(">", i)
        if close == -1:
            raise cant_parse(f"Unclosed start tag at byte offset {byte_offset(i)}")
        inner = src[i + 1 : close]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise cant_parse(f'Unexpected end tag "</{name}>" at byte offset {byte_offset(i)}')
            tag = stack.pop()
            if tag.name != name:
                raise cant_parse(
                    f'Unmatched end tag at byte offset {byte_offset(i)}, expected "</{tag.name}>", found "</{name}>"'
                )
            _close_html_tag(out, tag, stack)
        else:
            stack.append(_open_html_tag(inner, byte_offset(i), out.pos))
        i = close + 1
    if stack:
        raise cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return out.result()


def _open_html_tag(inner: str, byte_offset: int, pos: int) -> _OpenTag:
    match = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)", inner)
    name = match.group(1).lower() if match else ""
    if name not in _HTML_TAGS:
        raise cant_parse(f'Unsupported start tag "{name or inner[:10]}" at byte offset {byte_offset}')
    attrs: dict[str, str] = {}
    rest = inner[len(name) :].rstrip("/")
    for attr in _HTML_ATTR_RE.finditer(rest):
        value = next((g for g in attr.groups()[1:] if g is not None), "")
        attrs[attr.group(1).lower()] = html.unescape(value)
    kind = _HTML_TAGS[name]
    extra: dict[str, Any] = {}
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise cant_parse(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset}')
    if name == "a":
        extra["url"] = attrs.get("href", "")
    if name == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    if name == "tg-emoji":
        if "emoji-id" not in attrs:
            raise cant_parse(f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {byte_offset}')
        extra["custom_emoji_id"] = attrs["emoji-id"]
    if name == "code" and attrs.get("class", "").startswith("language-"):
        extra["language"] = attrs["class"].removeprefix("language-")
    return _OpenTag(name, kind, pos, extra)


def _close_html_tag(out: TextBuilder, tag: _OpenTag, stack: list[_OpenTag]) -> None:
    if tag.kind == "code" and stack and stack[-1].kind == "pre":
        # <pre><code class="language-x"> is one pre entity with a language
        if "language" in tag.extra:
            stack[-1].extra["language"] = tag.extra["language"]
        return
    extra = dict(tag.extra)
    if tag.kind == "code":
        extra.pop("language", None)
    if tag.kind == "text_link" and not extra.get("url"):
        return  # <a> without href is plain text
    out.entity(tag.kind, tag.start, **extra)
