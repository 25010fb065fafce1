"""Telegram's MarkdownV2 and legacy Markdown parsers, as the emulator models them."""

from __future__ import annotations

import re

from bot.emulator.errors import ApiError
from bot.emulator.markup import FormattedText, TextBuilder, cant_parse

_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD_ENTITY_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline",
                    "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code",
                    "pre": "Pre", "text_link": "TextUrl"}
_MDV2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
_MD_MARKERS = {"*": "bold", "_": "italic"}


# -- Markdown and MarkdownV2 -------------------------------------------------------------


class MarkdownParser:
    """Telegram's MarkdownV2 (v2=True) or legacy Markdown (v2=False)."""

    def __init__(self, src: str, *, v2: bool) -> None:
        self.src = src
        self.v2 = v2
        self.out = TextBuilder()
        self.stack: list[tuple[str, str, int, int]] = []  # marker, kind, start pos, source index
        self.i = 0

    def byte_offset(self, index: int) -> int:
        return len(self.src[:index].encode("utf-8"))

    def fail_unclosed(self) -> ApiError:
        marker, kind, _, index = self.stack[-1]
        if self.v2:
            name = _MD_ENTITY_NAMES[kind]
            return cant_parse(f"Can't find end of {name} entity at byte offset {self.byte_offset(index)}")
        return cant_parse(f"Can't find end of the entity starting at byte offset {self.byte_offset(index)}")

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
                raise cant_parse(
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
                raise cant_parse(f"Can't find end of a URL at byte offset {self.byte_offset(self.i)}")
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
            raise cant_parse(f"Can't find end of a URL at byte offset {self.byte_offset(index)}")
        self.out.entity("text_link", start, url="".join(url))
        self.i = j + 1

    def _blockquote_line(self) -> None:
        self.i += 1  # the ">" itself
        start = self.out.pos
        end = self.src.find("\n", self.i)
        end = len(self.src) if end == -1 else end
        line = self.src[self.i : end]
        # a quoted line is parsed like any other text, but ends at the newline
        inner = MarkdownParser(line, v2=True).parse()
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
