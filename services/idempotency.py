"""Idempotency keys for unsafe requests, after the IETF draft "The Idempotency-Key HTTP Header Field".

What callers may rely on, per API key and key value:
- The first request with a key runs; its response (any status below 500) is stored and replayed
  to every later request with the same key and the same fingerprint (method, path, body).
- The same key with a different fingerprint → `KeyReused` (answer 422).
- The same key while the first request is still running → `KeyInFlight` (answer 409). A request
  that died in flight stops blocking its key after `idempotency_lock_s`.
- A response of 500 or more is not stored (`abandon`): the client may retry with the same key.
- Keys expire `idempotency_ttl_hours` after first use; after that the key is new again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models.api import IdempotencyRecord
from services.context import ServiceContext
from services.db import insert_unless_exists, transaction

MAX_KEY_LENGTH = 255
_TABLE = IdempotencyRecord.__table__
_FINISH = sa.update(_TABLE).where(_TABLE.c.id == sa.bindparam("record_id"))  # built once: compiled once


class IdempotencyError(Exception):
    pass


class KeyInFlight(IdempotencyError):
    """A request with this key is still being processed."""


class KeyReused(IdempotencyError):
    """This key was first used with a different request."""


class BadKey(IdempotencyError):
    """The key is empty, too long, or not printable ASCII."""


@dataclass(frozen=True)
class Started:
    record_id: int


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: str
    content_type: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> str:
    # The draft makes the value a structured-field string: printable ASCII.
    if not key or len(key) > MAX_KEY_LENGTH or not all(0x20 <= ord(c) < 0x7F for c in key):
        raise BadKey(key[:40])
    return key


def begin(ctx: ServiceContext, *, api_key_id: int, key: str, fingerprint: str) -> Started | Replay:
    """Claim `key` for a request, or return the stored response to replay.

    Raises KeyInFlight, KeyReused or BadKey (nothing changes then).
    """
    check_key(key)
    for _ in range(3):  # a concurrent first use may win the insert; then read what it wrote
        try:
            with transaction(ctx.sessions) as session:
                return begin_in(session, ctx, api_key_id=api_key_id, key=key, fingerprint=fingerprint)
        except IntegrityError:
            continue
    raise KeyInFlight(key)


def begin_in(session: Session, ctx: ServiceContext, *, api_key_id: int, key: str, fingerprint: str) -> Started | Replay:
    """`begin` within the caller's transaction. An IntegrityError means a concurrent first use of the key
    committed first: roll back and call again (it then replays, or answers KeyInFlight)."""
    check_key(key)
    now = ctx.clock.now()
    settings = ctx.settings
    expires = now + timedelta(hours=settings.idempotency_ttl_hours)
    locked = now + timedelta(seconds=settings.idempotency_lock_s)
    where = (_TABLE.c.api_key_id == api_key_id, _TABLE.c.idem_key == key)
    # Core throughout: this runs on every unsafe request. A new key (the usual case) is one INSERT.
    values = dict(api_key_id=api_key_id, idem_key=key, fingerprint=fingerprint, state="in_flight",
                  created_at=now, expires_at=expires, locked_until=locked)
    record_id = insert_unless_exists(session, _TABLE, values, unique=["api_key_id", "idem_key"],
                                     returning=_TABLE.c.id)
    if record_id is not None:
        return Started(record_id)
    row = session.execute(sa.select(_TABLE).where(*where)).mappings().first()
    if row is None:  # removed between the two statements (an expiry sweep): ours to start
        return begin_in(session, ctx, api_key_id=api_key_id, key=key, fingerprint=fingerprint)
    if row["expires_at"] <= now:
        session.execute(sa.delete(_TABLE).where(_TABLE.c.id == row["id"]))
        return Started(session.execute(sa.insert(_TABLE).values(**values).returning(_TABLE.c.id)).scalar_one())
    if row["fingerprint"] != fingerprint:
        raise KeyReused(key)
    if row["state"] == "done":
        return Replay(row["status_code"], row["response_body"] or "", row["content_type"] or "application/json")
    if row["locked_until"] is not None and row["locked_until"] > now:
        raise KeyInFlight(key)
    # The first request died without an answer: this one takes over.
    session.execute(sa.update(_TABLE).where(_TABLE.c.id == row["id"]).values(locked_until=locked))
    return Started(row["id"])


# Both columns of uq_idempotency_key, so its index answers (by `idem_key` alone the table was scanned:
# a batch's read grew with every key ever stored). The pairs are sorted out below.
_IN_USE = sa.select(_TABLE.c.api_key_id, _TABLE.c.idem_key).where(
    _TABLE.c.api_key_id.in_(sa.bindparam("api_key_ids", expanding=True)),
    _TABLE.c.idem_key.in_(sa.bindparam("keys", expanding=True)))
_INSERT = sa.insert(_TABLE)


def keys_in_use(session: Session, pairs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Of these (API key, key) pairs, the ones with a record, answered, in flight or expired: one SELECT for a
    batch (services/intake_batch.py), which runs those through `begin_in` and the rest through `store_new`."""
    if not pairs:
        return set()
    rows = session.execute(_IN_USE, {"api_key_ids": sorted({api_key_id for api_key_id, _ in pairs}),
                                     "keys": sorted({key for _, key in pairs})})
    return {(api_key_id, key) for api_key_id, key in rows if (api_key_id, key) in pairs}


@dataclass(frozen=True)
class NewAnswer:
    """The answer to a key's first use, made in the transaction that stores it (`store_new`)."""

    api_key_id: int
    key: str
    fingerprint: str
    status_code: int
    body: str
    content_type: str


def store_new(session: Session, ctx: ServiceContext, answers: list[NewAnswer]) -> None:
    """Record first uses of keys that `keys_in_use` found free, answered, with one INSERT. What `begin_in`
    then `finish_in` would leave, without the in-flight step: no other transaction sees the record before
    this one commits anyway. An IntegrityError means another request stored one of the keys first."""
    if not answers:
        return
    now = ctx.clock.now()
    expires = now + timedelta(hours=ctx.settings.idempotency_ttl_hours)
    session.execute(_INSERT, [
        dict(api_key_id=a.api_key_id, idem_key=a.key, fingerprint=a.fingerprint, state="done", created_at=now,
             expires_at=expires, locked_until=None, status_code=a.status_code, response_body=a.body,
             content_type=a.content_type) for a in answers])


def finish(ctx: ServiceContext, *, record_id: int, status_code: int, body: str, content_type: str) -> None:
    """Store the response of a started request for replay."""
    with transaction(ctx.sessions) as session:
        finish_in(session, record_id=record_id, status_code=status_code, body=body, content_type=content_type)


def finish_in(session: Session, *, record_id: int, status_code: int, body: str, content_type: str) -> None:
    """`finish` within the caller's transaction (the answer commits with what it answers)."""
    session.execute(_FINISH, {"record_id": record_id, "state": "done", "status_code": status_code,
                              "response_body": body, "content_type": content_type, "locked_until": None})


def abandon(ctx: ServiceContext, *, record_id: int) -> None:
    """Forget a started request that failed on our side, so the client can retry with the same key."""
    with transaction(ctx.sessions) as session:
        session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id,
                                                           IdempotencyRecord.state == "in_flight"))


def purge_expired(ctx: ServiceContext) -> int:
    """Delete expired records; returns how many."""
    with transaction(ctx.sessions) as session:
        result = session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= ctx.clock.now()))
    return result.rowcount or 0


__all__ = [
    "BadKey",
    "KeyInFlight",
    "KeyReused",
    "Replay",
    "Started",
    "abandon",
    "begin",
    "begin_in",
    "check_key",
    "finish",
    "finish_in",
    "fingerprint",
    "purge_expired",
]
