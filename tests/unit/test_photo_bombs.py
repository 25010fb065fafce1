"""Decompression bombs under the pixel cap and damaged HEIC files (issue 13, items 3 and 4).

The bomb is run as the attack was: three 7000 × 7000 RGBA PNGs of about 190 KB cleaned at once, in a
child process whose peak resident memory is measured.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from services.photos import PhotoProblem, PhotoRejected, clean_photo

ROOT = Path(__file__).resolve().parents[2]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@lru_cache(maxsize=1)
def rgba_bomb(size: int = 7000) -> bytes:
    """A valid PNG declaring size × size RGBA pixels, all transparent, compressed row by row (never held whole)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(size * 4)  # filter byte, then the pixels
    idat = b"".join(compressor.compress(row) for _ in range(size)) + compressor.flush()
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


CLEAN_THREE_AT_ONCE = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from services.photos import PhotoRejected, clean_photo
data = open(sys.argv[1], "rb").read()
def one(_):
    try:
        clean_photo(data)
        return "cleaned"
    except PhotoRejected as exc:
        return exc.problem.value
with ThreadPoolExecutor(3) as pool:
    outcomes = list(pool.map(one, range(3)))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would count the parent test worker's size.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcomes": outcomes, "peak_kb": peak}))
"""


def test_three_rgba_bombs_at_once_are_refused_without_decoding(tmp_path: Path) -> None:
    bomb = rgba_bomb()
    assert len(bomb) < 250_000 and Image.open(io.BytesIO(bomb)).size == (7000, 7000)  # under the 50 MP cap
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    done = subprocess.run([sys.executable, "-c", CLEAN_THREE_AT_ONCE, str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == [PhotoProblem.TOO_MANY_PIXELS.value] * 3
    assert result["peak_kb"] < 300 * 1024, f"peak RSS {result['peak_kb'] // 1024} MB"


def test_a_large_but_ordinary_png_is_still_cleaned() -> None:
    im = Image.new("RGB", (4000, 3000), (40, 90, 160))  # 12 MP, 36 MB decoded: under the byte cap
    ImageDraw.Draw(im).rectangle([100, 100, 900, 700], fill=(200, 30, 30))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    clean = clean_photo(buf.getvalue())
    assert clean.source_format == "PNG" and max(clean.width, clean.height) == 2048


def test_png_text_chunks_are_held_to_a_few_megabytes() -> None:
    im = Image.new("RGB", (64, 64), (1, 2, 3))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    png = buf.getvalue()
    ztxt = _chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"x" * (1024 * 1024 - 16)))
    stuffed = png[:33] + ztxt * 8 + png[33:]  # 8 MB of text once decompressed, before the pixels
    with pytest.raises(PhotoRejected) as exc:
        clean_photo(stuffed)
    assert exc.value.problem is PhotoProblem.NOT_AN_IMAGE


@lru_cache(maxsize=1)
def valid_heic() -> bytes:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    im = Image.new("RGB", (96, 64), (200, 220, 240))
    ImageDraw.Draw(im).ellipse([10, 10, 60, 50], fill=(180, 40, 40))
    buf = io.BytesIO()
    im.save(buf, format="HEIF", quality=60)
    return buf.getvalue()


def _outcome(data: bytes) -> str:
    try:
        clean_photo(data)
    except PhotoRejected as exc:
        return exc.problem.value
    return "cleaned"


def test_a_heic_whose_picture_is_cut_short_is_refused_as_unreadable() -> None:
    for cut in (100, 300, 500):  # the header parses; pillow-heif raises ValueError while decoding
        with pytest.raises(PhotoRejected) as exc:
            clean_photo(valid_heic()[:-cut])
        assert exc.value.problem is PhotoProblem.NOT_AN_IMAGE


def test_text_chunks_of_a_png_are_not_carried_into_the_clean_copy() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "Wang Wei 13812345678, 12 Nanjing East Road", zip=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 9, 9)).save(buf, format="PNG", pnginfo=info)
    clean = clean_photo(buf.getvalue())
    assert b"13812345678" not in clean.jpeg and "comment" not in Image.open(io.BytesIO(clean.jpeg)).info


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_damaged_heic_is_cleaned_or_refused_never_an_exception(data) -> None:
    heic = bytearray(valid_heic())
    cut = data.draw(st.integers(min_value=12, max_value=len(heic)), label="cut")
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(heic) - 1), st.integers(1, 255)), max_size=8),
                      label="flips")
    for where, mask in flips:
        heic[where] ^= mask
    assert _outcome(bytes(heic[:cut])) in {"cleaned", *(p.value for p in PhotoProblem)}
