"""Photos from residents and workers: checked, re-encoded without EXIF, hashed, stored.

What callers may rely on:
- Only JPEG, PNG, WebP and HEIC/HEIF are decoded (Pillow restricted to those formats, HEIC
  through pillow-heif); anything else, including a PDF renamed .jpg, is `NOT_AN_IMAGE`.
- More than `max_bytes` (Telegram's 20 MB download cap) is refused before decoding; more than
  `max_pixels` (far below Pillow's own bomb limit), or a decoded size (width × height × bytes per
  pixel) over `max_decoded_bytes`, is refused from the header, before the pixels are decoded, so a
  decompression bomb costs nothing. PNG text and ICC chunks are held to a few megabytes.
- At most `MAX_CONCURRENT_DECODES` pictures are decoded at once in a process; others wait their
  turn, so a burst of large photos cannot multiply the peak memory.
- A truncated or damaged file (including a HEIC that pillow-heif cannot decode) is refused, never
  half-decoded, and never escapes as anything but `PhotoRejected`.
- The copy others see is a fresh JPEG with the orientation applied and no EXIF (so no GPS),
  scaled to at most `max_edge` pixels (at least half of it for large photos); the perceptual hash (imagehash pHash) is of that copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import imagehash
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 12 MP phone photo is fine; Pillow's own limit is ~179 MP
MAX_EDGE = 2048
# A 12 MP photo decodes to 36 MB (48 MB with alpha); 7000 × 7000 RGBA would need 196 MB before conversion.
MAX_DECODED_BYTES = 100 * 1024 * 1024
MAX_CONCURRENT_DECODES = 2  # per process; each decode may need a few times MAX_DECODED_BYTES at its peak
MAX_PNG_TEXT_BYTES = 4 * 1024 * 1024  # Pillow allows 64 MB of decompressed PNG text per file
SAME_PICTURE_DISTANCE = 6  # pHash Hamming distance at or under which two photos are "the same picture"

_heif_registered = False
_decoding = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2, "I;16L": 2,
                    "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}  # anything else is counted at 4 (RGBA, CMYK, I, F)


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, MAX_PNG_TEXT_BYTES)
        PngImagePlugin.MAX_TEXT_CHUNK = min(PngImagePlugin.MAX_TEXT_CHUNK, MAX_PNG_TEXT_BYTES)
        _heif_registered = True


def decoded_bytes(image: Image.Image) -> int:
    """What decoding `image` at its current size will allocate, from the header alone."""
    width, height = image.size
    return width * height * _BYTES_PER_PIXEL.get(image.mode, 4)


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
                max_edge: int = MAX_EDGE, max_decoded_bytes: int = MAX_DECODED_BYTES) -> CleanPhoto:
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
    except Exception as exc:  # noqa: BLE001  a header Pillow or pillow-heif cannot parse, whatever it raises
        raise PhotoRejected(PhotoProblem.NOT_AN_IMAGE, f"{type(exc).__name__}: {exc}") from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise PhotoRejected(PhotoProblem.TOO_MANY_PIXELS, f"{width}x{height}")
        source_format = image.format or "?"
        if source_format == "JPEG":
            # Let the JPEG decoder scale down while decoding (1/2, 1/4 …) as long as the result keeps
            # at least half of max_edge: a 12 MP photo decodes at 2000 × 1500 in a quarter of the time.
            image.draft("RGB", (max_edge // 2, max_edge // 2))
        if decoded_bytes(image) > max_decoded_bytes:  # after draft(): a JPEG decodes scaled down
            raise PhotoRejected(PhotoProblem.TOO_MANY_PIXELS, f"{width}x{height} {image.mode}")
        with _decoding:
            rgb = _decode(image, max_edge)
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


def _decode(image: Image.Image, max_edge: int) -> Image.Image:
    """The upright RGB picture scaled to `max_edge`; a file the decoder cannot finish is TRUNCATED."""
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        rgb = upright.convert("RGB")
    except (OSError, SyntaxError, EOFError) as exc:  # Pillow's word for a file cut short
        raise PhotoRejected(PhotoProblem.TRUNCATED, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001  damaged data: pillow-heif raises ValueError, other decoders worse
        raise PhotoRejected(PhotoProblem.NOT_AN_IMAGE, f"{type(exc).__name__}: {exc}") from exc
    del upright
    rgb.info = {}  # convert() copies info, and Pillow writes info["comment"] (a PNG text, a JPEG COM) into the JPEG
    rgb.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
    return rgb


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
