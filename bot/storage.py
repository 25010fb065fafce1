"""Conversation state that survives a restart: in the case store by default, Redis when configured."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from models.tables import FsmState
from services.db import transaction


class SqlStorage(BaseStorage):
    """aiogram storage backed by the `fsm_state` table (SQLite or PostgreSQL)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.keys = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)

    def _write(self, key: str, **fields: Any) -> None:
        with transaction(self.sessions) as session:
            row = session.get(FsmState, key)
            if row is None:
                row = FsmState(key=key, data={})
                session.add(row)
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = datetime.now(UTC)
            if row.state is None and not row.data:
                # Nothing left to remember; a row never stored (clearing an empty state) is just dropped.
                if row in session.new:
                    session.expunge(row)
                else:
                    session.delete(row)

    def _read(self, key: str) -> FsmState | None:
        with self.sessions() as session:
            return session.get(FsmState, key)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await asyncio.to_thread(self._write, self.keys.build(key), state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await asyncio.to_thread(self._read, self.keys.build(key))
        return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._write, self.keys.build(key), data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await asyncio.to_thread(self._read, self.keys.build(key))
        return dict(row.data) if row else {}

    async def close(self) -> None:
        return None


def create_storage(sessions: sessionmaker[Session], redis_url: str | None) -> BaseStorage:
    """Redis when `redis_url` is set (shared by several OneGrid processes), else the case store."""
    if redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(redis_url, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True))
    return SqlStorage(sessions)
