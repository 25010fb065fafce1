"""The upstream platform's signed push of Open311 service requests, checked and applied item by item.

What callers may rely on: nothing is applied unless pushes are configured (`PushNotConfigured`) and
the HMAC signature over ``<timestamp>.<body>`` is good and fresh (`upstream.BadSignature`); a body
that is not a request, a list of requests or ``{"requests": [...]}`` raises `MalformedPush`. At most
1000 requests are applied per push; applying the same request twice changes nothing more.
"""

from __future__ import annotations

import json

from services import upstream
from services.context import ServiceContext

MAX_ITEMS = 1000


class PushNotConfigured(LookupError):
    """No push secret is set: the upstream may not push."""


class MalformedPush(ValueError):
    """The body is not JSON (`not_json`) or not the expected shape (`bad_shape`)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def apply_upstream_push(ctx: ServiceContext, *, body: bytes, timestamp: str | None,
                        signature: str | None) -> dict[str, int]:
    """Verify the push and apply each request; returns how many requests had each outcome."""
    secret = ctx.settings.upstream_push_secret
    if secret is None:
        raise PushNotConfigured()
    upstream.verify_push(secret.get_secret_value(), timestamp=timestamp, signature=signature, body=body,
                         now=ctx.clock.now(), tolerance_s=ctx.settings.upstream_push_tolerance_s)
    try:
        data = json.loads(body)
    except ValueError:
        raise MalformedPush("not_json") from None
    items = data.get("requests", [data]) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedPush("bad_shape")
    outcomes: dict[str, int] = {}
    for item in items[:MAX_ITEMS]:
        outcome = upstream.apply_upstream_request(ctx, request=item)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
