"""API keys: creation, revocation, authentication, scopes, area scoping and per-key rate limits.

What callers may rely on:
- A key is shown once, as ``og_<key_id>_<secret>``; the store keeps `key_id` and the SHA-256 of
  the secret only, and compares hashes in constant time.
- `Principal.allows(scope)`: ``admin`` implies every other scope.
- A key with an area sees exactly the cases whose grid lies in that area's subtree
  (`case_scope_clause`, `case_in_scope`); cases with no grid are visible to unscoped keys only.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlmodel import Session, select

from models.api import ApiKey, Scope
from models.lifecycle import Role
from models.tables import Area, Case
from services.context import ServiceContext
from services.db import transaction

TOKEN_PREFIX = "og"
ACTING_ROLES = (Role.DISPATCHER.value, Role.SUPERVISOR.value)
# Writing last_used_at on every request would turn each read into a write; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# How long a checked token is taken on trust without reading its key again: a revocation in this process
# takes effect at once (`revoke_key` forgets them all), one made by another process within this time.
RECHECK_AFTER = timedelta(seconds=5)


class ApiKeyError(ValueError):
    """A key cannot be created or changed as asked; nothing was written."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    id: int
    key_id: str
    name: str
    scopes: frozenset[str]
    area_code: str | None
    acts_as: Role
    rate_per_minute: int

    def allows(self, scope: Scope | str) -> bool:
        return Scope.ADMIN.value in self.scopes or str(scope) in self.scopes


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def _principal(row: ApiKey) -> Principal:
    return Principal(
        id=row.id, key_id=row.key_id, name=row.name, scopes=frozenset(row.scopes), area_code=row.area_code,
        acts_as=Role(row.acts_as), rate_per_minute=row.rate_per_minute,
    )


def create_key(
    ctx: ServiceContext,
    *,
    name: str,
    scopes: Iterable[str],
    area_code: str | None = None,
    acts_as: str = Role.DISPATCHER.value,
    rate_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the stored row and the token (shown once, never stored).

    Raises ApiKeyError for an unknown scope, an unknown area, a role other than dispatcher or
    supervisor, or a non-positive rate.
    """
    scope_list = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in scope_list if s not in {m.value for m in Scope}]
    if unknown or not scope_list:
        raise ApiKeyError(f"scopes must be among {', '.join(m.value for m in Scope)}; got {scope_list}")
    if acts_as not in ACTING_ROLES:
        raise ApiKeyError(f"acts_as must be one of {', '.join(ACTING_ROLES)}")
    rate = ctx.settings.api_default_rate_per_minute if rate_per_minute is None else rate_per_minute
    if rate < 1:
        raise ApiKeyError("rate_per_minute must be at least 1")
    name = name.strip()
    if not name:
        raise ApiKeyError("a key needs a name")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with transaction(ctx.sessions) as session:
        if area_code is not None and session.exec(select(Area.id).where(Area.code == area_code)).first() is None:
            raise ApiKeyError(f"unknown area {area_code!r}")
        row = ApiKey(key_id=key_id, secret_hash=hash_secret(secret), name=name[:200], scopes=scope_list,
                     area_code=area_code, acts_as=acts_as, rate_per_minute=rate, created_at=ctx.clock.now())
        session.add(row)
    return row, f"{TOKEN_PREFIX}_{key_id}_{secret}"


class _Checked:
    """Tokens checked lately, per store (keyed by the session factory), by their SHA-256: never the token."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_store: WeakKeyDictionary[object, dict[str, tuple[Principal, datetime]]] = WeakKeyDictionary()

    def get(self, ctx: ServiceContext, digest: str) -> Principal | None:
        with self.lock:
            hit = self.by_store.get(ctx.sessions, {}).get(digest)
        return hit[0] if hit is not None and ctx.clock.now() - hit[1] < RECHECK_AFTER else None

    def put(self, ctx: ServiceContext, digest: str, principal: Principal) -> None:
        with self.lock:
            self.by_store.setdefault(ctx.sessions, {})[digest] = (principal, ctx.clock.now())

    def forget(self, ctx: ServiceContext) -> None:
        with self.lock:
            self.by_store.pop(ctx.sessions, None)


_CHECKED = _Checked()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def recently_authenticated(ctx: ServiceContext, *, token: str) -> Principal | None:
    """The principal of a token `authenticate` accepted less than RECHECK_AFTER ago, without reading the
    store (so a request needs no thread or transaction for it); None: call `authenticate`."""
    return _CHECKED.get(ctx, _digest(token))


def revoke_key(ctx: ServiceContext, *, key_id: str) -> ApiKey:
    """Revoke a key from now on (requests with it get 401). Raises ApiKeyError for an unknown key."""
    _CHECKED.forget(ctx)
    with transaction(ctx.sessions) as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if row is None:
            raise ApiKeyError(f"unknown key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = ctx.clock.now()
            session.add(row)
    _CHECKED.forget(ctx)  # again: a request between the first forget and the commit may have remembered it
    return row


def list_keys(ctx: ServiceContext) -> list[ApiKey]:
    with ctx.sessions() as session:
        return list(session.exec(select(ApiKey).order_by(ApiKey.id)))


def authenticate(ctx: ServiceContext, *, token: str) -> Principal | None:
    """The principal of a valid, unrevoked token; None for anything else (never says which)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    now = ctx.clock.now()
    with ctx.sessions() as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_id == key_id)).first()
        if row is None:
            hash_secret(secret)  # same work either way, so timing says nothing about which key ids exist
            return None
        if not secrets.compare_digest(row.secret_hash, hash_secret(secret)) or row.revoked_at is not None:
            return None
        principal = _principal(row)
        if row.last_used_at is None or now - row.last_used_at >= _LAST_USED_RESOLUTION:
            session.execute(sa.update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
            session.commit()
    _CHECKED.put(ctx, _digest(token), principal)
    return principal


# ---------------------------------------------------------------------------- area scope


def area_subtree(area_code: str) -> sa.Select:
    """SELECT of the codes of `area_code` and every area below it (recursive, on SQLite and PostgreSQL)."""
    area = Area.__table__
    top = sa.select(area.c.code).where(area.c.code == area_code).cte("subtree", recursive=True)
    below = sa.select(area.c.code).join(top, area.c.parent_code == top.c.code)
    tree = top.union_all(below)
    return sa.select(tree.c.code)


def case_scope_clause(principal: Principal) -> sa.ColumnElement[bool]:
    """WHERE clause limiting Case rows to the principal's area (true for an unscoped key)."""
    if principal.area_code is None:
        return sa.true()
    return Case.grid_code.in_(area_subtree(principal.area_code))


def area_in_scope(session: Session, principal: Principal, area_code: str | None) -> bool:
    """Whether `area_code` (a grid or any area) lies inside the principal's area subtree."""
    if principal.area_code is None:
        return True
    if area_code is None:
        return False
    found = session.execute(
        sa.select(sa.literal(1)).where(sa.literal(area_code).in_(area_subtree(principal.area_code)))
    ).first()
    return found is not None


def case_in_scope(session: Session, principal: Principal, case: Case) -> bool:
    return area_in_scope(session, principal, case.grid_code)


# ---------------------------------------------------------------------------- rate limits


class RateLimiter:
    """Token bucket per key: `rate_per_minute` requests a minute with bursts up to a tenth of that.

    In memory, per process (a key's budget is per OneGrid process). Thread-safe. A key is a key's id,
    or a string such as ``public:<address>`` for keyless Open311 reads; at most `max_buckets` are kept
    (a flood of new addresses forgets the idlest half, so memory stays bounded).
    """

    def __init__(self, max_buckets: int = 100_000) -> None:
        self._buckets: dict[int | str, tuple[float, datetime]] = {}
        self._lock = threading.Lock()
        self.max_buckets = max_buckets

    def check(self, key: int | str, rate_per_minute: int, now: datetime) -> float:
        """Take one token; 0.0 when allowed, else the seconds until one is available (Retry-After)."""
        per_second = rate_per_minute / 60.0
        capacity = max(1.0, rate_per_minute / 10.0)
        with self._lock:
            if key not in self._buckets and len(self._buckets) >= self.max_buckets:
                idlest = sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.max_buckets // 2]
                for stale in idlest:
                    del self._buckets[stale]
            tokens, at = self._buckets.get(key, (capacity, now))
            elapsed = max(0.0, (now - at).total_seconds())
            tokens = min(capacity, tokens + elapsed * per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return max(1.0, math.ceil((1.0 - tokens) / per_second))


__all__ = [
    "ApiKeyError",
    "Principal",
    "RateLimiter",
    "area_in_scope",
    "area_subtree",
    "authenticate",
    "case_in_scope",
    "case_scope_clause",
    "create_key",
    "list_keys",
    "revoke_key",
]
