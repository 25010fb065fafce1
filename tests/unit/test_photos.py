"""Photo cleaning: what is refused, what is stripped, what counts as the same picture."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageDraw

from services.photos import PhotoProblem, PhotoRejected, clean_photo, is_same_picture, save_photo


def picture(size=(640, 480), seed: int = 1) -> Image.Image:
    im = Image.new("RGB", size, (200, 220, 240))
    draw = ImageDraw.Draw(im)
    for i in range(12):
        x = (seed * 97 + i * 53) % size[0]
        y = (seed * 31 + i * 71) % size[1]
        draw.rectangle([x, y, x + size[0] // 5, y + size[1] // 6], fill=((seed * 40 + i * 20) % 255, 80, 120))
    return im


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg_with_gps() -> bytes:
    im = picture()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° on display
    gps = {1: "N", 2: (31.0, 13.0, 27.0), 3: "E", 4: (121.0, 26.0, 12.0)}
    exif[0x8825] = gps
    return encode(im, "JPEG", exif=exif.tobytes())


def test_exif_and_gps_are_stripped_and_orientation_applied() -> None:
    clean = clean_photo(jpeg_with_gps())
    out = Image.open(io.BytesIO(clean.jpeg))
    assert out.format == "JPEG"
    assert not out.getexif()  # nothing carried over, GPS included
    assert (clean.width, clean.height) == (480, 640)  # rotated as the phone meant it


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_other_allowed_formats_are_cleaned_to_jpeg(fmt: str) -> None:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    clean = clean_photo(encode(picture(), fmt))
    assert clean.source_format == fmt and Image.open(io.BytesIO(clean.jpeg)).format == "JPEG"


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = encode(Image.new("1", (12_000, 12_000)), "PNG")  # tiny file, 144 megapixels
    assert len(bomb) < 100_000
    with pytest.raises(PhotoRejected) as exc:
        clean_photo(bomb)
    assert exc.value.problem is PhotoProblem.TOO_MANY_PIXELS


def test_truncated_jpeg_is_refused() -> None:
    data = encode(picture((1200, 900)), "JPEG", quality=95)
    with pytest.raises(PhotoRejected) as exc:
        clean_photo(data[: len(data) // 2])
    assert exc.value.problem is PhotoProblem.TRUNCATED


@pytest.mark.parametrize("data", [b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", b"GIF89a" + bytes(100), b""])
def test_non_images_and_other_formats_are_refused(data: bytes) -> None:
    with pytest.raises(PhotoRejected) as exc:
        clean_photo(data)
    assert exc.value.problem is PhotoProblem.NOT_AN_IMAGE


def test_gif_is_not_an_allowed_format() -> None:
    with pytest.raises(PhotoRejected) as exc:
        clean_photo(encode(picture(), "GIF"))
    assert exc.value.problem is PhotoProblem.NOT_AN_IMAGE


def test_oversized_file_is_refused_before_decoding() -> None:
    with pytest.raises(PhotoRejected) as exc:
        clean_photo(b"\xff\xd8" + bytes(1000), max_bytes=500)
    assert exc.value.problem is PhotoProblem.TOO_LARGE


def test_same_picture_is_recognised_after_recompression_but_a_different_one_is_not() -> None:
    original = clean_photo(encode(picture(seed=3), "JPEG", quality=95))
    recompressed = clean_photo(encode(picture(seed=3).resize((320, 240)), "JPEG", quality=40))
    other = clean_photo(encode(picture(seed=11), "JPEG", quality=95))
    assert is_same_picture(recompressed.phash, [original.phash])
    assert not is_same_picture(other.phash, [original.phash])


def test_large_photos_are_scaled_down_for_sharing(tmp_path) -> None:
    clean = clean_photo(encode(picture((4000, 3000)), "JPEG"))
    assert 1024 <= max(clean.width, clean.height) <= 2048
    path, original = save_photo(tmp_path, clean)
    assert original is None and (tmp_path / path).read_bytes() == clean.jpeg
    assert save_photo(tmp_path, clean)[0] == path  # the same photo is one file


def test_concurrent_saves_of_one_photo_all_succeed_with_one_file(tmp_path) -> None:
    # A double-tapped Submit, or two processes, save the same picture at the same moment.
    clean = clean_photo(encode(picture((800, 600)), "JPEG"))
    start = threading.Barrier(8)

    def save() -> tuple[str, str | None]:
        start.wait()
        return save_photo(tmp_path, clean, original=b"original bytes")

    with ThreadPoolExecutor(8) as pool:
        results = [f.result() for f in [pool.submit(save) for _ in range(8)]]
    assert len(set(results)) == 1
    path, original = results[0]
    assert (tmp_path / path).read_bytes() == clean.jpeg and (tmp_path / original).read_bytes() == b"original bytes"
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []  # no temporary file left behind
