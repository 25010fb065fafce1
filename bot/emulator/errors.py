"""Errors the emulated Bot API answers with, shaped like Telegram's."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description, optional ResponseParameters.

    `body()` is exactly what goes over the wire, e.g.
    `{"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}`.
    """

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(message: str) -> ApiError:
    """A 400 answer whose description is `"Bad Request: " + message`."""
    return ApiError(400, f"Bad Request: {message}")


def not_found_error() -> ApiError:
    return ApiError(404, "Not Found")


def unauthorized_error() -> ApiError:
    return ApiError(401, "Unauthorized")


def too_many_requests(retry_after: int) -> ApiError:
    """A 429 answer carrying `retry_after` seconds, as Telegram sends it."""
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
