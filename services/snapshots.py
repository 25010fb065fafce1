"""Camera snapshots: a machine case's snapshot links (`Case.media_urls`) as the case's photo.

Design: the dispatcher fetches (services/dispatcher.py calls `fetch_pending` before it claims its
batch), so the intake request never waits for a camera, and the work order, made by the dispatch
that follows, is the snapshot with the order as its caption (one message). Fetching runs outside
any transaction; only the short write of the results is one.

What callers may rely on:
- A link is fetched at most once per case (a `CaseSnapshot` row records each outcome; a concurrent
  fetch of the same case loses on the unique key and changes nothing), only over http(s), only from
  a host on `settings.snapshot_hosts` (a host name, or host:port), without following redirects or
  proxies, within `snapshot_timeout_s` in all and `snapshot_max_bytes`; then cleaned like any photo
  (services/photos.py: decoded, EXIF dropped, re-encoded) and stored as a report photo of the case.
- At most `MAX_FETCHED` links of a case are fetched. With `snapshot_hosts` empty nothing is fetched.
- `snapshot_links` are the links of a case that did not become a photo: the order and the cards show
  them instead (fetching off, a host not allowed, a failed fetch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.field import CaseSnapshot, SnapshotOutcome
from models.tables import Case, Photo
from models.work import PendingDispatch
from services.context import ServiceContext
from services.db import transaction
from services.photos import PhotoRejected, clean_photo, save_photo

log = logging.getLogger(__name__)

MAX_FETCHED = 3  # links of one case fetched; the rest stay links
BATCH = 20


class SnapshotRefused(Exception):
    """The link is not http(s) or its host is not on the allowed list: it is never fetched."""


class SnapshotFailed(Exception):
    """The fetch did not give a usable picture (HTTP error, timeout, too large, not a picture)."""


@dataclass(frozen=True)
class Fetched:
    url: str
    outcome: SnapshotOutcome
    detail: str | None = None
    photo: tuple[str, str, int, int] | None = None  # path, phash, width, height of the clean copy


def is_web_link(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https") and bool(urlsplit(url).hostname)


def allowed(url: str, hosts: Iterable[str]) -> bool:
    """True when `url` is http(s) and its host (or host:port) is on `hosts` (lower-case entries)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        return False
    hosts = set(hosts)
    return host in hosts or (port is not None and f"{host}:{port}" in hosts)


def download(url: str, *, hosts: Iterable[str], timeout_s: float, max_bytes: int) -> bytes:
    """The body of `url`, or SnapshotRefused / SnapshotFailed; never more than `max_bytes` read."""
    if not allowed(url, hosts):
        raise SnapshotRefused(url)
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False) as client:
            with client.stream("GET", url, headers={"Accept": "image/*"}) as response:
                if response.status_code != 200:
                    raise SnapshotFailed(f"HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise SnapshotFailed(f"{declared} bytes")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise SnapshotFailed(f"over {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise SnapshotFailed("too slow")
                return bytes(body)
    except httpx.HTTPError as exc:
        raise SnapshotFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc


def fetch_one(ctx: ServiceContext, url: str) -> Fetched:
    settings = ctx.settings
    try:
        data = download(url, hosts=settings.snapshot_host_list, timeout_s=settings.snapshot_timeout_s,
                        max_bytes=settings.snapshot_max_bytes)
        clean = clean_photo(data, max_bytes=settings.snapshot_max_bytes)
    except SnapshotRefused:
        return Fetched(url, SnapshotOutcome.REFUSED)
    except (SnapshotFailed, PhotoRejected) as exc:
        log.warning("camera snapshot %s not usable: %s", url, exc)
        return Fetched(url, SnapshotOutcome.FAILED, str(exc)[:500])
    path, _original = save_photo(settings.data_dir, clean)
    return Fetched(url, SnapshotOutcome.FETCHED, photo=(path, clean.phash, clean.width, clean.height))


def fetch_case(ctx: ServiceContext, case_id: int, urls: list[str]) -> int:
    """Fetch the case's first links and record them in one short transaction; returns photos stored."""
    results = [fetch_one(ctx, url) for url in urls[:MAX_FETCHED]]
    now = ctx.clock.now()
    stored = 0
    try:
        with transaction(ctx.sessions) as session:
            for result in results:
                photo_id = None
                if result.photo is not None:
                    path, phash, width, height = result.photo
                    photo = Photo(case_id=case_id, uploader_id=None, purpose="report", path=path, phash=phash,
                                  width=width, height=height, created_at=now)
                    session.add(photo)
                    session.flush()
                    photo_id, stored = photo.id, stored + 1
                session.add(CaseSnapshot(case_id=case_id, url=result.url[:1000], outcome=result.outcome,
                                         photo_id=photo_id, detail=result.detail, fetched_at=now))
    except IntegrityError:  # another dispatcher recorded this case first: its rows stand
        return 0
    return stored


def fetch_pending(ctx: ServiceContext, *, limit: int = BATCH) -> int:
    """Before a dispatch batch: fetch the snapshots of queued machine cases not fetched yet."""
    hosts = ctx.settings.snapshot_host_list
    if not hosts:
        return 0
    now = ctx.clock.now()
    with ctx.sessions() as session:
        done = select(CaseSnapshot.case_id)
        rows = session.exec(
            select(Case.id, Case.media_urls).join(PendingDispatch, PendingDispatch.case_id == Case.id)
            .where(PendingDispatch.not_before <= now, Case.id.not_in(done))
            .order_by(PendingDispatch.queued_at).limit(limit)
        ).all()
    stored = 0
    for case_id, urls in rows:
        links = [u for u in (urls or []) if isinstance(u, str)]
        if links:
            stored += fetch_case(ctx, case_id, links)
    return stored


def snapshot_links(session: Session, case: Case) -> list[str]:
    """The case's http(s) snapshot links that did not become a photo of it (shown as links instead)."""
    urls = [u for u in (case.media_urls or []) if isinstance(u, str) and is_web_link(u)]
    if not urls:
        return []
    fetched = set(session.exec(select(CaseSnapshot.url).where(
        CaseSnapshot.case_id == case.id, CaseSnapshot.outcome == SnapshotOutcome.FETCHED)).all())
    return [u for u in urls if u not in fetched]


def snapshot_photo(session: Session, case_id: int) -> Photo | None:
    """The first camera snapshot stored as a photo of the case, if any."""
    photo_id = session.exec(select(CaseSnapshot.photo_id).where(
        CaseSnapshot.case_id == case_id, CaseSnapshot.photo_id.is_not(None)).order_by(CaseSnapshot.id)).first()
    return session.get(Photo, photo_id) if photo_id is not None else None


__all__ = ["MAX_FETCHED", "SnapshotFailed", "SnapshotRefused", "allowed", "download", "fetch_case",
           "fetch_pending", "snapshot_links", "snapshot_photo"]
