"""Sync with the upstream platform of record: the outbox relay out, signed pushes and polling in.

The parts, one module each:
- `services.upstream_relay`: outbound. `UpstreamRelay` sends each outbox row, in order per case,
  with retries and dead letters (see its docstring for the guarantees); the outbox admin reads.
- `services.upstream_mirror`: receiving (`apply_downstream_event`): a OneGrid that is the upstream
  of another mirrors each of the other's cases, applying its events through the lifecycle, once
  each and in order (`seq`); `services.upstream_batch` (`apply_downstream_batch`) does the same
  for an ordered batch in one transaction, with a result per event.
- `services.upstream_inbound`: inbound from the upstream (`apply_upstream_request`, used by the
  signed push endpoint and by `poll_upstream_once`): Open311 service requests; unknown open ones
  become local cases (source ``upstream``, dispatched like any other), a close upstream closes the
  local case where the lifecycle allows the SYSTEM actor to.

This module keeps the one import path the API, the CLI and the app factory use.
"""

from __future__ import annotations

from services.upstream_inbound import (
    BadSignature,
    apply_upstream_request,
    poll_upstream_once,
    requests_from_xml,
    sign_push,
    verify_push,
)
from services.upstream_batch import BatchConflict, apply_downstream_batch
from services.upstream_mirror import Diverged, NotVisible, OutOfOrder, SyncRefused, apply_downstream_event
from services.upstream_relay import (
    RelayStats,
    UpstreamRelay,
    backoff,
    build_event,
    dead_letters,
    event_id,
    make_client,
    outbox_health,
    parse_retry_after,
    retry_dead_letters,
)

__all__ = [
    "BadSignature",
    "BatchConflict",
    "Diverged",
    "NotVisible",
    "OutOfOrder",
    "RelayStats",
    "SyncRefused",
    "UpstreamRelay",
    "apply_downstream_batch",
    "apply_downstream_event",
    "apply_upstream_request",
    "backoff",
    "build_event",
    "dead_letters",
    "event_id",
    "make_client",
    "outbox_health",
    "parse_retry_after",
    "poll_upstream_once",
    "requests_from_xml",
    "retry_dead_letters",
    "sign_push",
    "verify_push",
]

