"""A queued notification row as the Bot API call that sends it (bot/delivery.py).

`payload` holds the call's parameters except `chat_id`; a photo to upload is named by
`payload["photo_path"]`, a file under DATA_DIR. Its bytes are read in one go, in one worker
thread: aiogram's FSInputFile reads a file through aiofiles, a thread hand-off per 64 KB chunk
and for the open and the close, and in `onegrid serve` those threads are the store's
(onegrid/app.py), so an order's photo waited behind store work several times over.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiogram.methods
from aiogram.types import BufferedInputFile


async def build_method(row: dict[str, Any], data_dir: Path) -> aiogram.methods.TelegramMethod:
    """The call for `row`. Raises ValueError for a row that can never be sent (an unknown method,
    parameters the method refuses) and OSError when its photo cannot be read now."""
    name = row["method"]
    cls = getattr(aiogram.methods, name[:1].upper() + name[1:], None)
    if cls is None:
        raise ValueError(f"unknown Bot API method in the queue: {name}")
    params = dict(row["payload"])
    photo_path = params.pop("photo_path", None)
    if photo_path is not None:
        path = data_dir / photo_path
        params["photo"] = BufferedInputFile(await asyncio.to_thread(path.read_bytes), filename=path.name)
    if "chat_id" in cls.model_fields:
        params["chat_id"] = row["chat_id"]
    return cls(**params)
