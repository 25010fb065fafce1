"""Language, account deletion, drafts that time out, and a flood from one user."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import select

from models.resident import CaseFeedback, CaseFollower
from models.tables import Case, Notification, Person, Photo
from services import reporting
from tests.bot.resident_kit import (
    Resident,
    buttons,
    consent,
    make_person,
    person_of,
    press_data_contains,
    resident_app,  # noqa: F401 - fixture
    seed_case,
    settings_overrides,  # noqa: F401 - fixture
)


async def test_lang_switches_language_and_is_remembered(resident_app, emulator, db) -> None:
    pia = Resident(emulator.user(7001, "Pia", language_code="en"), emulator)
    await consent(pia)
    mark = pia.last_id()
    await pia.user.send_text("🌐 Language")
    choice = await pia.expect("Choose your language:", after=mark)
    mark = pia.last_id()
    await press_data_contains(pia, choice, "lang:zh_CN")
    done = await pia.expect("语言已设置为：中文。", after=mark)
    assert pia.reply_keyboard_texts() == ["📝 上报问题", "📋 我的案件", "🌐 语言", "❓ 帮助"]
    person = person_of(db, 7001)
    assert (person.locale, person.locale_chosen) == ("zh_CN", True)
    mark = done["message_id"]
    await pia.user.send_command("/help")
    help_text = await pia.expect("您可以：", after=mark)
    assert "/report — 上报问题：照片、位置、简短描述" in help_text["text"]


async def test_bot_command_menu_is_set_in_both_languages(resident_app, emulator) -> None:
    await emulator.wait_for(lambda: len(emulator.calls("setMyCommands")) >= 2)
    menus = {r.params.get("language_code"): r.params["commands"] for r in emulator.calls("setMyCommands") if r.ok}
    commands = menus[None] if isinstance(menus[None], list) else __import__("json").loads(menus[None])
    zh = menus["zh"] if isinstance(menus["zh"], list) else __import__("json").loads(menus["zh"])
    assert [c["command"] for c in commands] == ["report", "my", "lang", "help", "cancel", "delete"]
    assert zh[0]["description"] == "上报问题" and commands[0]["description"] == "report a problem"


async def test_deleting_the_account_removes_personal_data_and_keeps_cases(resident_app, emulator, db) -> None:
    gus = Resident(emulator.user(7002, "Gus", username="gus_sh", language_code="en"), emulator)
    await consent(gus)
    person = person_of(db, 7002)
    assert (person.display_name, person.username) == ("Gus", "gus_sh")
    case = seed_case(resident_app, person_id=person.id)
    original = Path(resident_app.settings.data_dir) / "originals" / "ab" / "abcdef"
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_bytes(b"raw jpeg with gps")
    with db.sessions() as s, s.begin():
        s.add(Photo(case_id=case.id, uploader_id=person.id, purpose="report", path="photos/ab/abcdef.jpg",
                    original_path="originals/ab/abcdef", created_at=resident_app.ctx.clock.now()))
        s.add(CaseFeedback(case_id=case.id, person_id=person.id, closed_at=resident_app.ctx.clock.now(),
                           asked_at=resident_app.ctx.clock.now(), fixed=True, rating=4,
                           comment="call me on 13812341234"))

    mark = gus.last_id()
    await gus.user.send_command("/delete")
    ask = await gus.expect("Delete your data?", after=mark)
    mark = gus.last_id()
    await press_data_contains(gus, ask, "acct:delete")
    bye = await gus.expect("Your data has been deleted", after=mark)
    assert emulator.reply_keyboard(7002) is None  # the menu is gone too

    with db.sessions() as s:
        gone = s.get(Person, person.id)
        assert (gone.telegram_user_id, gone.display_name, gone.username, gone.consented_at) == (None, "", None, None)
        assert gone.deleted_at is not None
        assert s.get(Case, case.id).reporter_id == person.id  # the case stays, pointing at nobody
        assert not s.exec(select(CaseFollower).where(CaseFollower.person_id == person.id)).all()
        fb = s.exec(select(CaseFeedback).where(CaseFeedback.person_id == person.id)).one()
        assert (fb.rating, fb.comment) == (4, None)  # the rating counts, the words are gone
        photo = s.exec(select(Photo).where(Photo.case_id == case.id)).one()
        assert photo.original_path is None
    def delivery_log() -> list | None:  # once the farewell's delivery is recorded, it is all that is left
        with db.sessions() as s:
            rows = s.exec(select(Notification).where(Notification.chat_id == 7002)).all()
        return rows if rows and all(n.telegram_message_id for n in rows) else None

    log = await emulator.wait_for(delivery_log)
    assert [(n.telegram_message_id, n.person_id) for n in log if n.payload.get("text")] == [(bye["message_id"], None)]
    assert not original.exists()
    assert person_of(db, 7002) is None  # /start again would be a new, unconsented person


async def test_a_quiet_draft_expires_and_the_resident_is_told(resident_app, emulator, db, clock) -> None:
    tom = Resident(emulator.user(7003, "Tom", language_code="en"), emulator)
    una = Resident(emulator.user(7004, "Una", language_code="en"), emulator)
    for r in (tom, una):
        make_person(db, r.id)
        mark = r.last_id()
        await r.user.send_command("/report")
        await r.expect(lambda m: any(":kind:" in b["callback_data"] for b in buttons(m)), after=mark)
    clock.advance(minutes=31)
    # The sweep drops Tom's draft and tells him; Una writes first and is told by the handler.
    mark_una = una.last_id()
    await una.user.send_text("hello?")
    await una.expect("expired after 30 minutes", after=mark_una)
    mark_tom = tom.last_id()
    dropped = await asyncio.to_thread(reporting.expire_drafts, resident_app.ctx)
    assert dropped == 1
    expired = await tom.expect("expired after 30 minutes", after=mark_tom)
    assert expired["text"] == ("Your unfinished report expired after 30 minutes without activity; nothing was "
                               "stored. Send /report to start again.")
    with db.sessions() as s:
        assert not s.exec(select(Case)).all()


async def test_a_flood_from_one_user_is_shed_without_holding_up_others(resident_app, emulator, db) -> None:
    spam = Resident(emulator.user(7005, "Spam", language_code="en"), emulator)
    calm = Resident(emulator.user(7006, "Calm", language_code="en"), emulator)
    for i in range(80):
        await spam.user.send_text(f"spam {i}")
    # Calm is answered while Spam's backlog is shed and worked off (no wall-clock bound: machines are noisy).
    await calm.user.send_command("/help")
    await calm.expect("What you can do:")
    notice = await spam.expect("faster than I can read them", timeout=15)
    assert notice["text"].startswith("You are sending messages faster than I can read them")
    isolation = resident_app.dispatcher.fsm.events_isolation
    assert isolation.shed >= 80 - resident_app.settings.max_pending_updates_per_user
    # What was not shed is answered (in order), and the user can go on normally afterwards.
    await spam.expect("I did not understand")
    answered = [t for t in spam.texts() if t.startswith("I did not understand")]
    assert len(answered) <= resident_app.settings.max_pending_updates_per_user

