"""The console sends pictures as a Telegram app does: JPEG, upright, no metadata, at most 2560 px a side."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.sandbox import CLIENT_PHOTO_EDGE, PersonaError, client_photo
from tests.console.conftest import picture


def test_a_sideways_phone_photo_is_turned_upright_and_loses_its_metadata() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned 90° clockwise
    exif[0x010F] = "PhoneMaker"
    source = io.BytesIO()
    Image.open(io.BytesIO(picture(size=(640, 480)))).save(source, format="JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(client_photo(source.getvalue()))) as sent:
        assert sent.format == "JPEG" and sent.size == (480, 640)
        assert not sent.getexif()


def test_large_pictures_are_scaled_down_to_what_telegram_keeps() -> None:
    with Image.open(io.BytesIO(client_photo(picture(size=(5120, 2880))))) as sent:
        assert sent.size == (CLIENT_PHOTO_EDGE, 1440)


@pytest.mark.parametrize(("data", "code"), [
    (b"%PDF-1.7 a document", "not_a_picture"),
    (picture(fmt="JPEG", size=(800, 600))[:1500], "not_a_picture"),  # cut off in the pixels
    (b"\xff" * (10 * 1024 * 1024 + 1), "too_large"),
])
def test_what_is_not_a_usable_picture_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(PersonaError) as refused:
        client_photo(data)
    assert refused.value.code == code


def test_a_picture_with_too_many_pixels_is_refused_from_its_header() -> None:
    bomb = io.BytesIO()
    Image.new("1", (8000, 8000)).save(bomb, format="PNG")  # 64 MP, a few kB on disk
    with pytest.raises(PersonaError) as refused:
        client_photo(bomb.getvalue())
    assert refused.value.code == "too_large" and len(bomb.getvalue()) < 100_000
