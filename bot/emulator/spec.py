"""The Bot API described as data, and validation of a request's parameters against it.

What callers may rely on:
- `load_spec()` reads `spec/api.json` from this package once per process.
- `ApiSpec.validate()` either returns the parameters parsed into Python values (integers,
  floats, booleans, strings, decoded JSON objects and arrays, `UploadedFile` for files) or
  raises `ApiError(400, "Bad Request: ...")` with a description in Telegram's style.
- Nested JSON objects are checked recursively: required fields present, no unknown fields,
  scalar types right; a union ("InlineKeyboardMarkup or ReplyKeyboardMarkup ...") passes when
  one alternative does; an abstract type (InputMedia, BotCommandScope, ...) passes when the
  subtype named by its `type`/`status`/`source` field does.
- Telegram's own limits that bots hit in practice are enforced on inline keyboards:
  callback_data 1-64 bytes, exactly one action field per button, button URLs http(s)/tg.
  (Text and caption lengths are checked where the text is parsed, see `formatting`.)
- Telegram silently ignores unknown parameters; this emulator rejects them, on purpose, so that
  a misspelt parameter fails a test instead of being dropped.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.emulator.errors import bad_request
from bot.emulator.formatting import utf16_len

SPEC_PATH = Path(__file__).parent / "spec" / "api.json"

_SCALARS = frozenset({"Integer", "Float", "Boolean", "String", "InputFile"})
_INT_RE = re.compile(r"^[+-]?\d+$")
# Subtypes name themselves in a first field: 'Type of the reaction, always "emoji"',
# 'Scope type, must be default'.
_DISCRIMINATOR_RE = re.compile(r'(?:always|must be) "?([a-z_]+)"?')
_DISCRIMINATOR_FIELDS = ("type", "status", "source")
# Parameters Telegram still accepts though the documentation dropped them (aiogram still sends
# them when a bot passes them), keyed by the modern parameter that must exist on the method.
_LEGACY_PARAMETERS = {
    "reply_to_message_id": ("reply_parameters", ["Integer"]),
    "allow_sending_without_reply": ("reply_parameters", ["Boolean"]),
    "disable_web_page_preview": ("link_preview_options", ["Boolean"]),
}
# What Telegram says when a required parameter is missing, where it says something specific.
_MISSING_MESSAGES = {
    "text": "message text is empty",
    "message_id": "message identifier is not specified",
    "photo": "there is no photo in the request",
    "document": "there is no document in the request",
    "callback_query_id": "query is too old and response timeout expired or query ID is invalid",
}
_INLINE_BUTTON_LABEL_FIELDS = frozenset({"text", "icon_custom_emoji_id", "style"})
MAX_CAPTION_LENGTH = 1024


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # keeps recorded requests readable
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"


class _Invalid(Exception):
    """A nested value does not fit its type; `depth` ranks competing union alternatives."""

    def __init__(self, message: str, depth: int, *, telegram: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.depth = depth
        # A Telegram-specific error (e.g. BUTTON_DATA_INVALID) is reported verbatim.
        self.telegram = telegram


def _best(errors: list[_Invalid]) -> _Invalid:
    for error in errors:
        if error.telegram:
            return error
    return max(errors, key=lambda e: e.depth)


class ApiSpec:
    """Methods and types of one Bot API version, as loaded from api.json."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.version: str = data.get("version", "unknown")
        self.methods: dict[str, Any] = data["methods"]
        self.types: dict[str, Any] = data["types"]
        self._method_by_lower = {name.lower(): name for name in self.methods}
        self._discriminators: dict[str, tuple[str, str]] = {}
        for name, spec in self.types.items():
            for field in spec.get("fields", [])[:1]:
                if field["name"] in _DISCRIMINATOR_FIELDS and field["required"]:
                    match = _DISCRIMINATOR_RE.search(field.get("description", ""))
                    if match:
                        self._discriminators[name] = (field["name"], match.group(1))

    # -- methods ---------------------------------------------------------------------------

    def canonical_method(self, name: str) -> str | None:
        """The documented spelling of a method name given in any letter case, or None."""
        return self._method_by_lower.get(name.lower())

    def returns(self, method: str) -> list[str]:
        return list(self.methods[method].get("returns", []))

    def sends_messages(self, method: str) -> bool:
        """True for methods that post messages into a chat (counted by Telegram's limits)."""
        if not method.startswith(("send", "copy", "forward")):
            return False
        return any(r.replace("Array of ", "") in ("Message", "MessageId") for r in self.returns(method))

    def validate(
        self, method: str, raw: Mapping[str, Any], files: Mapping[str, UploadedFile]
    ) -> dict[str, Any]:
        """Check `raw` parameters (strings from a form, or JSON values) for `method`.

        `files` are the multipart file parts; a parameter may be a file part of its own name,
        or the string "attach://<part name>". Returns the parsed parameters.
        """
        fields = {f["name"]: f for f in self.methods[method].get("fields", [])}
        raw = dict(raw)
        for part_name, part in files.items():
            # a file part named after a parameter is that parameter; others are attach:// targets
            if part_name in fields and raw.get(part_name) is None:
                raw[part_name] = part
        parsed: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None:
                continue
            field = fields.get(name)
            if field is None:
                legacy = _LEGACY_PARAMETERS.get(name)
                if legacy is None or legacy[0] not in fields:
                    raise bad_request(f'unknown parameter "{name}" for method {method}')
                types = legacy[1]
            else:
                types = field["types"]
            parsed[name] = self._parse_parameter(name, value, types, files)
        for name, field in fields.items():
            if field["required"] and name not in parsed:
                raise bad_request(_MISSING_MESSAGES.get(name, f"{name} is empty"))
        return parsed

    # -- top-level parameters: strings from forms, or JSON values ------------------------

    def _parse_parameter(
        self, name: str, value: Any, types: list[str], files: Mapping[str, UploadedFile]
    ) -> Any:
        if isinstance(value, str) and value.startswith("attach://") and "InputFile" in types:
            part = value.removeprefix("attach://")
            if part not in files:
                raise bad_request(f'file attachment "{part}" for parameter "{name}" not found in the request')
            return files[part]
        errors: list[_Invalid] = []
        for type_expr in types:
            try:
                return self._parse_top(name, value, type_expr, files)
            except _Invalid as error:
                errors.append(error)
        best = _best(errors)
        if len(types) > 1 and not best.telegram and best.depth == 0:
            raise bad_request(f'parameter "{name}" must be of type {" or ".join(types)}')
        raise bad_request(best.message)

    def _parse_top(self, name: str, value: Any, type_expr: str, files: Mapping[str, UploadedFile]) -> Any:
        expected = f'parameter "{name}" must be of type {type_expr}'
        if isinstance(value, UploadedFile):
            if type_expr == "InputFile":
                return value
            raise _Invalid(expected, 0)
        if type_expr == "Integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and _INT_RE.match(value.strip()):
                return int(value)
            raise _Invalid(expected, 0)
        if type_expr == "Float":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise _Invalid(expected, 0)
        if type_expr == "Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, str)) and str(value).lower() in ("true", "1", "false", "0"):
                return str(value).lower() in ("true", "1")
            raise _Invalid(expected, 0)
        if type_expr == "String":
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)  # Telegram accepts numbers for string parameters in JSON
            raise _Invalid(expected, 0)
        if type_expr == "InputFile":
            raise _Invalid(f'parameter "{name}" must be a file upload', 0)
        # A JSON-serialized object or array: a string to decode, or already JSON in a JSON body.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                kind = "array" if type_expr.startswith("Array of") else "object"
                raise _Invalid(f"can't parse {name} JSON {kind}", 1) from None
        try:
            self._check(value, type_expr, name, 1)
        except _Invalid as error:
            if error.telegram:
                raise
            raise _Invalid(f"can't parse {name} JSON object: {error.message}", error.depth) from None
        return value

    # -- nested JSON values ---------------------------------------------------------------

    def _check(self, value: Any, type_expr: str, path: str, depth: int) -> None:
        if type_expr.startswith("Array of "):
            if not isinstance(value, list):
                raise _Invalid(f"{path} must be an array", depth)
            inner = type_expr.removeprefix("Array of ")
            for i, item in enumerate(value):
                self._check(item, inner, f"{path}[{i}]", depth + 1)
            return
        if type_expr in _SCALARS:
            if not _scalar_fits(value, type_expr):
                raise _Invalid(f"{path} must be of type {type_expr}", depth)
            return
        spec = self.types.get(type_expr)
        if spec is None:
            raise _Invalid(f"{path}: unknown type {type_expr}", depth)
        if not isinstance(value, dict):
            raise _Invalid(f"{path} must be a {type_expr} object", depth)
        if "subtypes" in spec:
            self._check_abstract(value, type_expr, spec["subtypes"], path, depth)
            return
        self._check_object(value, type_expr, spec.get("fields", []), path, depth)

    def _check_abstract(self, value: dict, type_expr: str, subtypes: list[str], path: str, depth: int) -> None:
        chosen = [
            s
            for s in subtypes
            if s in self._discriminators and value.get(self._discriminators[s][0]) == self._discriminators[s][1]
        ]
        has_discriminators = any(s in self._discriminators for s in subtypes)
        if has_discriminators and not chosen:
            field = next(self._discriminators[s][0] for s in subtypes if s in self._discriminators)
            raise _Invalid(f'{path}: unsupported {type_expr} {field} "{value.get(field)}"', depth + 1)
        errors: list[_Invalid] = []
        for subtype in chosen or subtypes:
            try:
                self._check(value, subtype, path, depth)
                return
            except _Invalid as error:
                errors.append(error)
        raise _best(errors)

    def _check_object(self, value: dict, type_name: str, fields: list[dict], path: str, depth: int) -> None:
        known = {f["name"]: f for f in fields}
        for key in value:
            if key not in known:
                raise _Invalid(f'{path}: unknown field "{key}" in {type_name}', depth + 1)
        for field in fields:
            if field["required"] and field["name"] not in value:
                raise _Invalid(f'{path}: field "{field["name"]}" of {type_name} is required', depth + 1)
        for key, item in value.items():
            errors: list[_Invalid] = []
            for alternative in known[key]["types"]:
                try:
                    self._check(item, alternative, f"{path}.{key}", depth + 1)
                    break
                except _Invalid as error:
                    errors.append(error)
            else:
                raise _best(errors)
        check = _TELEGRAM_CHECKS.get(type_name)
        if check is not None:
            check(value, path, depth)


def _scalar_fits(value: Any, type_name: str) -> bool:
    if type_name == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "Float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "Boolean":
        return isinstance(value, bool)
    return isinstance(value, str)  # String, and InputFile given as "attach://..." or a file_id


def _check_inline_button(button: dict, path: str, depth: int) -> None:
    actions = [key for key in button if key not in _INLINE_BUTTON_LABEL_FIELDS]
    if not actions:
        raise _Invalid(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
            depth,
            telegram=True,
        )
    if len(actions) > 1:
        raise _Invalid(
            "can't parse inline keyboard button: exactly one of the optional fields must be used, "
            f"got {', '.join(actions)}",
            depth,
            telegram=True,
        )
    if "callback_data" in button and not 1 <= len(button["callback_data"].encode("utf-8")) <= 64:
        raise _Invalid("BUTTON_DATA_INVALID", depth, telegram=True)
    if "url" in button and not re.match(r"^(https?|tg)://\S+$", button["url"]):
        raise _Invalid("BUTTON_URL_INVALID", depth, telegram=True)


def _check_caption(media: dict, path: str, depth: int) -> None:
    caption = media.get("caption")
    if isinstance(caption, str) and utf16_len(caption) > MAX_CAPTION_LENGTH:
        raise _Invalid("message caption is too long", depth, telegram=True)


_TELEGRAM_CHECKS = {
    "InlineKeyboardButton": _check_inline_button,
    "InputMediaPhoto": _check_caption,
    "InputMediaDocument": _check_caption,
    "InputMediaVideo": _check_caption,
    "InputMediaAudio": _check_caption,
    "InputMediaAnimation": _check_caption,
}


@functools.cache
def load_spec(path: Path = SPEC_PATH) -> ApiSpec:
    """The bundled Bot API specification (parsed once per process)."""
    with path.open(encoding="utf-8") as fh:
        return ApiSpec(json.load(fh))
