"""A WeCom member's conversation state (which proof they are completing, which reason or which welfare
check's location is awaited), kept in the store beside aiogram's (`fsm_state`, keys `wecom:<userid>`), so
a restart loses nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from models.tables import FsmState
from services.context import ServiceContext
from services.db import transaction

PROOF, RETURN_REASON, REJECT_REASON, WELFARE, NOTE = "proof", "return_reason", "reject_reason", "welfare", "note"
PATROL = "patrol"  # a patrol report being written (wecom/handlers_patrol.py)


@dataclass
class Conversation:
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _key(userid: str) -> str:
    return f"wecom:{userid}"


def load(ctx: ServiceContext, userid: str) -> Conversation:
    with ctx.sessions() as session:
        row = session.get(FsmState, _key(userid))
        return Conversation(row.state, dict(row.data)) if row is not None else Conversation()


def save(ctx: ServiceContext, userid: str, state: str | None, data: dict[str, Any] | None = None) -> None:
    with transaction(ctx.sessions) as session:
        write(session, ctx, userid, state, data)


def write(session: Session, ctx: ServiceContext, userid: str, state: str | None, data: dict[str, Any] | None) -> None:
    row = session.get(FsmState, _key(userid)) or FsmState(key=_key(userid))
    row.state, row.data, row.updated_at = state, dict(data or {}), ctx.clock.now()
    session.add(row)
