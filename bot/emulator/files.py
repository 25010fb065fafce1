"""Files the emulated Telegram keeps: uploads by the bot and by fake users.

What callers may rely on:
- Every stored file has a fresh `file_id` and a `file_unique_id` derived from its content
  (the same bytes uploaded twice share the unique id, as on Telegram), unless one is given.
- A photo becomes a list of PhotoSize dicts, smallest first; the largest has the original
  bytes (so downloading it returns exactly what was uploaded), smaller ones are thumbnails
  made with Pillow when it is installed. Sizes come from Pillow when it can read the image,
  else a default of 1280x960.
- `get(file_id)` / `by_path(file_path)` find a stored file; photos sent by URL have no bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import mimetypes
from dataclasses import dataclass
from typing import Any

try:  # Pillow is optional: without it sizes fall back to a default
    from PIL import Image
except ImportError:  # pragma: no cover - the project depends on Pillow
    Image = None  # type: ignore[assignment]

DEFAULT_PHOTO_SIZE = (1280, 960)
_THUMBNAIL_SIDES = (90, 320, 800)  # Telegram's s, m, x sizes below the original
_MAX_PHOTO_SIDE = 2560
_FILE_ID_PREFIX = {"photo": "AgAC", "document": "BQAC", "url": "AgAD"}


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    data: bytes | None
    file_path: str | None
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def file_size(self) -> int | None:
        return None if self.data is None else len(self.data)

    def as_file(self) -> dict[str, Any]:
        """The Bot API `File` object (what getFile returns)."""
        result: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.file_size is not None:
            result["file_size"] = self.file_size
        if self.file_path is not None:
            result["file_path"] = self.file_path
        return result

    def as_photo_size(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": self.width,
            "height": self.height,
        }
        if self.file_size is not None:
            result["file_size"] = self.file_size
        return result

    def as_document(self) -> dict[str, Any]:
        result: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        for key in ("file_name", "mime_type", "file_size"):
            value = getattr(self, key)
            if value is not None:
                result[key] = value
        return result


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class FileStore:
    """All files of one emulator, by file_id and by file_path."""

    def __init__(self, salt: str) -> None:
        self._salt = salt
        self._counter = itertools.count(1)
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}

    def get(self, file_id: str) -> StoredFile | None:
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        return self._by_path.get(file_path)

    def add(
        self,
        data: bytes | None,
        kind: str,
        *,
        unique_id: str | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        unique_salt: str = "",
    ) -> StoredFile:
        """Store one file and give it ids and a download path."""
        n = next(self._counter)
        file_id = _FILE_ID_PREFIX.get(kind, "CAAC") + _b64(hashlib.sha256(f"{self._salt}:{n}".encode()).digest()[:24])
        if unique_id is None:
            digest = hashlib.sha256((data if data is not None else f"{self._salt}:{n}".encode()) + unique_salt.encode())
            unique_id = "AQAD" + _b64(digest.digest()[:9])
        path = None
        if data is not None:
            ext = mimetypes.guess_extension(mime_type or "") or (".jpg" if kind == "photo" else "")
            if file_name and "." in file_name:
                ext = "." + file_name.rsplit(".", 1)[1]
            path = f"{kind}s/file_{n}{ext}"
        stored = StoredFile(file_id, unique_id, kind, data, path, file_name, mime_type, width, height)
        self._by_id[file_id] = stored
        if path:
            self._by_path[path] = stored
        return stored

    def add_photo(self, data: bytes | None, *, unique_id: str | None = None) -> list[dict[str, Any]]:
        """Store a photo and its thumbnails; returns the message's `photo` (PhotoSize list)."""
        width, height = _image_size(data)
        sizes: list[dict[str, Any]] = []
        dims = {}
        for side in _THUMBNAIL_SIDES:
            if side >= max(width, height):
                break
            scale = side / max(width, height)
            dims[side] = (max(1, round(width * scale)), max(1, round(height * scale)))
        for side, thumbnail in zip(dims, _thumbnails(data, list(dims.values())), strict=True):
            w, h = dims[side]
            salt = f"thumb{side}"
            stored = self.add(thumbnail, "photo", width=w, height=h, unique_salt=salt,
                              unique_id=f"{unique_id}_{side}" if unique_id else None)
            sizes.append(stored.as_photo_size())
        if max(width, height) > _MAX_PHOTO_SIDE:  # Telegram keeps at most 2560 px per side
            scale = _MAX_PHOTO_SIDE / max(width, height)
            width, height = round(width * scale), round(height * scale)
        original = self.add(data, "photo" if data is not None else "url", unique_id=unique_id,
                            width=width, height=height)
        sizes.append(original.as_photo_size())
        return sizes

    def add_document(
        self, data: bytes, file_name: str | None, mime_type: str | None, *, unique_id: str | None = None
    ) -> StoredFile:
        if mime_type in (None, "application/octet-stream") and file_name:
            mime_type = mimetypes.guess_type(file_name)[0] or mime_type
        return self.add(data, "document", unique_id=unique_id, file_name=file_name, mime_type=mime_type)


def _image_size(data: bytes | None) -> tuple[int, int]:
    if data is None or Image is None:
        return DEFAULT_PHOTO_SIZE
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - unreadable bytes get the default size
        return DEFAULT_PHOTO_SIZE


def _thumbnails(data: bytes | None, sizes: list[tuple[int, int]]) -> list[bytes | None]:
    """JPEG thumbnails of `data` at each size, decoded once (at the largest size a JPEG draft allows)."""
    if data is None or Image is None or not sizes:
        return [data] * len(sizes)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", max(sizes))  # a JPEG decodes straight at a fraction of its size
            rgb = image.convert("RGB")
        out = []
        for size in sizes:
            buf = io.BytesIO()
            rgb.resize(size, reducing_gap=2.0).save(buf, format="JPEG", quality=80)
            out.append(buf.getvalue())
        return out
    except Exception:  # noqa: BLE001 - unreadable bytes stand for their own thumbnails
        return [data] * len(sizes)
