"""Photos from residents and workers: checked, re-encoded without EXIF, hashed, stored.

What callers may rely on:
- Only JPEG, PNG, WebP and HEIC/HEIF are decoded (Pillow restricted to those formats, HEIC
  through pillow-heif); anything else, including a PDF renamed .jpg, is `NOT_AN_IMAGE`.
- More than `max_bytes` (Telegram's 20 MB download cap) is refused before decoding; more than
  `max_pixels` (far below Pillow's own bomb limit) is refused from the header, before the
  pixels are decoded, so a decompression bomb costs nothing.
- A truncated file is refused, never half-decoded.
- The copy others see is a fresh JPEG with the orientation applied and no EXIF (so no GPS),
  scaled to at most `max_edge` pixels (at least half of it for large photos); the perceptual hash (imagehash pHash) is of that copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 12 MP phone photo is fine; Pillow's own limit is ~179 MP
MAX_EDGE = 2048
SAME_PICTURE_DISTANCE = 6  # pHash Hamming distance at or under which two photos are "the same picture"

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


class PhotoProblem(StrEnum):
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    TOO_MANY_PIXELS = "too_many_pixels"
    TRUNCATED = "truncated"


class PhotoRejected(Exception):
    def __init__(self, problem: PhotoProblem, detail: str = "") -> None:
        super().__init__(f"{problem.value}: {detail}" if detail else problem.value)
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True)
class CleanPhoto:
    jpeg: bytes  # EXIF-free JPEG for everyone else to see
    width: int
    height: int
    source_format: str
    phash: str  # hex pHash of the clean copy
    sha256: str  # of the original bytes


def clean_photo(data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                max_edge: int = MAX_EDGE) -> CleanPhoto:
    """Validate `data` and return its clean copy, or raise `PhotoRejected` saying why."""
    if len(data) > max_bytes:
        raise PhotoRejected(PhotoProblem.TOO_LARGE, f"{len(data)} bytes")
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        if isinstance(exc, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
            raise PhotoRejected(PhotoProblem.TOO_MANY_PIXELS, str(exc)) from exc
        raise PhotoRejected(PhotoProblem.NOT_AN_IMAGE) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # a header Pillow cannot parse
        raise PhotoRejected(PhotoProblem.NOT_AN_IMAGE, str(exc)) from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise PhotoRejected(PhotoProblem.TOO_MANY_PIXELS, f"{width}x{height}")
        source_format = image.format or "?"
        if source_format == "JPEG":
            # Let the JPEG decoder scale down while decoding (1/2, 1/4 …) as long as the result keeps
            # at least half of max_edge: a 12 MP photo decodes at 2000 × 1500 in a quarter of the time.
            image.draft("RGB", (max_edge // 2, max_edge // 2))
        try:
            image.load()
        except (OSError, SyntaxError) as exc:
            raise PhotoRejected(PhotoProblem.TRUNCATED, str(exc)) from exc
        upright = ImageOps.exif_transpose(image)
        rgb = upright.convert("RGB")
    rgb.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=85, optimize=True)  # no exif= argument: nothing carried over
    return CleanPhoto(
        jpeg=out.getvalue(),
        width=rgb.width,
        height=rgb.height,
        source_format=source_format,
        phash=str(imagehash.phash(rgb)),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two hex pHashes."""
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def is_same_picture(phash: str, others: list[str], *, max_distance: int = SAME_PICTURE_DISTANCE) -> bool:
    return any(phash_distance(phash, other) <= max_distance for other in others)


def save_photo(data_dir: Path, photo: CleanPhoto, *, original: bytes | None = None) -> tuple[str, str | None]:
    """Write the clean copy (and the original, when retention allows) under `data_dir/photos`.

    Returns paths relative to `data_dir`. Files are named by content hash, so a retry writes the same file.
    """
    folder = data_dir / "photos" / photo.sha256[:2]
    folder.mkdir(parents=True, exist_ok=True)
    clean = folder / f"{photo.sha256}.jpg"
    _write_once(clean, photo.jpeg)
    original_path = None
    if original is not None:
        keep = data_dir / "originals" / photo.sha256[:2] / photo.sha256
        keep.parent.mkdir(parents=True, exist_ok=True)
        _write_once(keep, original)
        original_path = str(keep.relative_to(data_dir))
    return str(clean.relative_to(data_dir)), original_path


def _write_once(path: Path, data: bytes) -> None:
    """Write `path` atomically unless it exists. Two writers of the same content (a double-tapped
    Submit, two processes) each write their own temporary file, so neither can lose the other's rename."""
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # same content either way: the last rename wins harmlessly
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
