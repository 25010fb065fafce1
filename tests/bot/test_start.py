"""A person's first contact, through the real Dispatcher, the queue and the sender."""

from __future__ import annotations

from sqlmodel import select

from models.tables import Notification, NotificationStatus


async def test_start_greets_in_chinese_for_a_chinese_telegram(onegrid, emulator) -> None:
    li = emulator.user(4201, first_name="李雷", language_code="zh-hans")
    await li.send_command("/start")
    [greeting] = await li.wait_inbox(1)
    assert greeting["text"].startswith("李雷，您好！")
    assert "/help — 显示本列表" in greeting["text"]


async def test_start_greets_in_english_otherwise_and_escapes_the_name(onegrid, emulator, db) -> None:
    bob = emulator.user(4202, first_name="<b>Bob</b>", language_code="de")
    await bob.send_command("/start")
    [greeting] = await bob.wait_inbox(1)
    assert greeting["text"].startswith("Hello, <b>Bob</b>! This is OneGrid")  # shown literally, not as bold
    assert not any(e["type"] == "bold" for e in greeting.get("entities", []))

    def stored_reply() -> Notification | None:  # the reply went through the durable queue
        with db.sessions() as s:
            row = s.exec(select(Notification).where(Notification.chat_id == 4202)).one()
        return row if row.status == NotificationStatus.SENT else None

    row = await emulator.wait_for(stored_reply)
    assert row.telegram_message_id == greeting["message_id"]


async def test_help_is_delivered_even_when_telegram_first_answers_429(onegrid, emulator) -> None:
    emulator.inject(method="sendMessage", chat_id=4203, kind="429", times=1, retry_after=1)
    ann = emulator.user(4203, first_name="Ann", language_code="en")
    await ann.send_command("/help")
    [reply] = await ann.wait_inbox(1, timeout=15)
    assert reply["text"].splitlines()[0] == "What you can do:"
    assert emulator.stats["429_injected"] == 1
