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
from dataclasses import dataclass, field
from typing import Any

from bot.emulator.errors import ApiError, bad_request

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
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD_ENTITY_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline",
                    "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code",
                    "pre": "Pre", "text_link": "TextUrl"}
_MDV2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
_MD_MARKERS = {"*": "bold", "_": "italic"}

# Plain-text entities Telegram detects by itself, most specific first.
_AUTO_PATTERNS = [
    ("url", re.compile(r"(?<![\w@/])(?:https?://|www\.)[^\s<>\"]+")),
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("bot_command", re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])")),
    ("mention", re.compile(r"(?<![\w@])@[a-zA-Z0-9_]{4,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d_]\w*")),
]
_NO_AUTO_INSIDE = frozenset({"code", "pre", "text_link", "url", "email", "bot_command", "mention", "hashtag"})


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, Telegram's unit for lengths and offsets."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class FormattedText:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def format_text(text: str, parse_mode: str | None = None, entities: list[dict] | None = None) -> FormattedText:
    """Parse `text` as Telegram does for sendMessage/editMessageText/captions (see module doc)."""
    if entities is not None:
        result = FormattedText(text, [dict(e) for e in entities])
    elif parse_mode:
        mode = parse_mode.lower()
        if mode == "html":
            result = _parse_html(text)
        elif mode == "markdownv2":
            result = _MarkdownParser(text, v2=True).parse()
        elif mode == "markdown":
            result = _MarkdownParser(text, v2=False).parse()
        else:
            raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    else:
        result = FormattedText(text, [])
    result = _strip(result)
    result.entities = _sorted(result.entities + detect_entities(result.text, result.entities))
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


def _sorted(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


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


def _cant_parse(message: str) -> ApiError:
    return bad_request(f"can't parse entities: {message}")


class _Builder:
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
        return FormattedText("".join(self.parts), _sorted(self.entities))


# -- HTML -------------------------------------------------------------------------------


@dataclass
class _OpenTag:
    name: str
    kind: str
    start: int
    extra: dict[str, Any]


def _parse_html(src: str) -> FormattedText:
    out = _Builder()
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
            raise _cant_parse(f"Unclosed start tag at byte offset {byte_offset(i)}")
        inner = src[i + 1 : close]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _cant_parse(f'Unexpected end tag "</{name}>" at byte offset {byte_offset(i)}')
            tag = stack.pop()
            if tag.name != name:
                raise _cant_parse(
                    f'Unmatched end tag at byte offset {byte_offset(i)}, expected "</{tag.name}>", found "</{name}>"'
                )
            _close_html_tag(out, tag, stack)
        else:
            stack.append(_open_html_tag(inner, byte_offset(i), out.pos))
        i = close + 1
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return out.result()


def _open_html_tag(inner: str, byte_offset: int, pos: int) -> _OpenTag:
    match = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)", inner)
    name = match.group(1).lower() if match else ""
    if name not in _HTML_TAGS:
        raise _cant_parse(f'Unsupported start tag "{name or inner[:10]}" at byte offset {byte_offset}')
    attrs: dict[str, str] = {}
    rest = inner[len(name) :].rstrip("/")
    for attr in _HTML_ATTR_RE.finditer(rest):
        value = next((g for g in attr.groups()[1:] if g is not None), "")
        attrs[attr.group(1).lower()] = html.unescape(value)
    kind = _HTML_TAGS[name]
    extra: dict[str, Any] = {}
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise _cant_parse(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset}')
    if name == "a":
        extra["url"] = attrs.get("href", "")
    if name == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    if name == "tg-emoji":
        if "emoji-id" not in attrs:
            raise _cant_parse(f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {byte_offset}')
        extra["custom_emoji_id"] = attrs["emoji-id"]
    if name == "code" and attrs.get("class", "").startswith("language-"):
        extra["language"] = attrs["class"].removeprefix("language-")
    return _OpenTag(name, kind, pos, extra)


def _close_html_tag(out: _Builder, tag: _OpenTag, stack: list[_OpenTag]) -> None:
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


# -- Markdown and MarkdownV2 -------------------------------------------------------------


class _MarkdownParser:
    """Telegram's MarkdownV2 (v2=True) or legacy Markdown (v2=False)."""

    def __init__(self, src: str, *, v2: bool) -> None:
        self.src = src
        self.v2 = v2
        self.out = _Builder()
        self.stack: list[tuple[str, str, int, int]] = []  # marker, kind, start pos, source index
        self.i = 0

    def byte_offset(self, index: int) -> int:
        return len(self.src[:index].encode("utf-8"))

    def fail_unclosed(self) -> ApiError:
        marker, kind, _, index = self.stack[-1]
        if self.v2:
            name = _MD_ENTITY_NAMES[kind]
            return _cant_parse(f"Can't find end of {name} entity at byte offset {self.byte_offset(index)}")
        return _cant_parse(f"Can't find end of the entity starting at byte offset {self.byte_offset(index)}")

    def parse(self) -> FormattedText:
        src = self.src
        while self.i < len(src):
            char = src[self.i]
            top_kind = self.stack[-1][1] if self.stack else None
            if char == "\\" and self.i + 1 < len(src) and self._escapable(src[self.i + 1]):
                self.out.add(src[self.i + 1])
                self.i += 2
            elif top_kind in ("code", "pre"):
                self._inside_code(top_kind)
            elif self.v2 and char == "\r":
                self.i += 1  # MarkdownV2 ignores CR: "_\r" separates italic from underline
            elif char == "`":
                self._open_code()
            elif char == "[":
                self.stack.append(("[", "text_link", self.out.pos, self.i))
                self.i += 1
            elif char == "]" and top_kind == "text_link":
                self._close_link()
            elif self._marker_at(self.i):
                marker = self._marker_at(self.i)
                self._toggle(marker)
                self.i += len(marker)
            elif self.v2 and char == ">" and (self.i == 0 or src[self.i - 1] == "\n"):
                self._blockquote_line()
            elif self.v2 and char in _MDV2_RESERVED:
                raise _cant_parse(
                    f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
                )
            else:
                self.out.add(char)
                self.i += 1
        if self.stack:
            raise self.fail_unclosed()
        return self.out.result()

    def _escapable(self, char: str) -> bool:
        if self.v2:
            return 1 <= ord(char) <= 126
        return char in "_*`["

    def _marker_at(self, index: int) -> str | None:
        markers = _MDV2_MARKERS if self.v2 else _MD_MARKERS
        for marker in sorted(markers, key=len, reverse=True):
            if self.src.startswith(marker, index):
                return marker
        return None

    def _toggle(self, marker: str) -> None:
        kind = (_MDV2_MARKERS if self.v2 else _MD_MARKERS)[marker]
        if self.stack and self.stack[-1][0] == marker:
            _, _, start, _ = self.stack.pop()
            self.out.entity(kind, start)
        elif any(m == marker for m, *_ in self.stack):
            raise self.fail_unclosed()
        else:
            self.stack.append((marker, kind, self.out.pos, self.i))

    def _open_code(self) -> None:
        if self.src.startswith("```", self.i):
            self.i += 3
            language = re.match(r"([^\s`]*)\n", self.src[self.i :])
            self.stack.append(("```", "pre", self.out.pos, self.i - 3))
            if language and language.group(1):
                self.stack[-1] = ("```" + language.group(1), "pre", self.out.pos, self.i - 3)
                self.i += len(language.group(0))
        else:
            self.stack.append(("`", "code", self.out.pos, self.i))
            self.i += 1

    def _inside_code(self, kind: str) -> None:
        marker, _, start, _ = self.stack[-1]
        closer = "```" if kind == "pre" else "`"
        if self.src.startswith(closer, self.i):
            self.stack.pop()
            language = marker[3:]
            self.out.entity(kind, start, **({"language": language} if language else {}))
            self.i += len(closer)
        else:
            self.out.add(self.src[self.i])
            self.i += 1

    def _close_link(self) -> None:
        _, _, start, index = self.stack.pop()
        src = self.src
        if not src.startswith("(", self.i + 1):
            if self.v2:
                raise _cant_parse(f"Can't find end of a URL at byte offset {self.byte_offset(self.i)}")
            self.i += 1  # legacy Markdown: "[x]" without a URL is plain text
            return
        j = self.i + 2
        url: list[str] = []
        while j < len(src) and src[j] != ")":
            if src[j] == "\\" and j + 1 < len(src):
                j += 1
            url.append(src[j])
            j += 1
        if j >= len(src):
            raise _cant_parse(f"Can't find end of a URL at byte offset {self.byte_offset(index)}")
        self.out.entity("text_link", start, url="".join(url))
        self.i = j + 1

    def _blockquote_line(self) -> None:
        self.i += 1  # the ">" itself
        start = self.out.pos
        end = self.src.find("\n", self.i)
        end = len(self.src) if end == -1 else end
        line = self.src[self.i : end]
        # a quoted line is parsed like any other text, but ends at the newline
        inner = _MarkdownParser(line, v2=True).parse()
        previous = next(
            (e for e in self.out.entities if e["type"] == "blockquote" and e["offset"] + e["length"] + 1 == start),
            None,
        )
        for entity in inner.entities:
            self.out.entities.append({**entity, "offset": entity["offset"] + start})
        self.out.add(inner.text)
        if previous is not None:  # consecutive quoted lines form one blockquote
            previous["length"] = self.out.pos - previous["offset"]
        else:
            self.out.entity("blockquote", start)
        self.i = end
