"""The WeCom protocol edges through the emulator: URL verification, signatures, redelivery, binding,
the access token's renewal, the documented limits and errors, and the dead letter."""

from __future__ import annotations

import asyncio

import httpx
from sqlmodel import select

from models.api import InboxMessage
from models.lifecycle import Role
from models.tables import NotificationStatus, Person
from models.wecom import WecomMessage
from services.invitations import create_invitation
from services.people import RosterError, bind_wecom_userid
from tests.wecom.support import ZH, act, add_wecom_person, next_message, until
from tests.worker_support import GRID, add_worker
from wecom.emulator import WecomMember
from wecom.emulator.cipher import encrypt, signature


def inbox_rows(db) -> list[InboxMessage]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(InboxMessage).where(InboxMessage.channel == "wecom")).all())


def wecom_rows(db) -> list[WecomMessage]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(WecomMessage).order_by(WecomMessage.id)).all())


async def test_the_callback_url_is_verified_with_the_documented_echostr(world, wecom_emu) -> None:
    echo = encrypt(wecom_emu.encoding_aes_key, wecom_emu.corp_id, "1616140317555161061")
    query = {"msg_signature": signature(wecom_emu.token, "1409659589", "263014780", echo),
             "timestamp": "1409659589", "nonce": "263014780", "echostr": echo}
    async with httpx.AsyncClient(timeout=60) as http:  # not httpx's 5 s: CI machines get loaded
        good = await http.get(wecom_emu.callback_url, params=query)
        bad = await http.get(wecom_emu.callback_url, params={**query, "nonce": "1"})
    assert (good.status_code, good.text) == (200, "1616140317555161061")
    assert bad.status_code == 403


async def test_a_callback_with_a_bad_signature_is_refused_and_stores_nothing(world, wecom_emu, db, clock) -> None:
    await asyncio.to_thread(add_wecom_person, db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                            department_code="greening_appearance", on_duty=False)
    member = WecomMember(wecom_emu, "wangwei")
    refused = await member.post(member.event("click", EventKey="duty"), token="not-the-token")
    query, body = member.sealed(member.event("click", EventKey="duty"))
    tampered = await member.post_sealed(query, body.replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA"))
    assert (refused.status_code, tampered.status_code) == (403, 403)
    await asyncio.sleep(0.3)
    assert inbox_rows(db) == [] and wecom_rows(db) == []
    with db.sessions() as s:
        assert s.exec(select(Person.on_duty).where(Person.wecom_userid == "wangwei")).one() is False


async def test_a_redelivered_invitation_code_binds_once_and_welcomes_once(world, wecom_emu, db, clock) -> None:
    issued = await asyncio.to_thread(create_invitation, world.ctx, role=Role.WORKER, area_code=GRID,
                                     department_code="greening_appearance")
    member = WecomMember(wecom_emu, "zhaolei")
    query, body = member.sealed(member.message("text", Content=issued.token))
    first, again = await member.post_sealed(query, body), await member.post_sealed(query, body)  # WeCom retries
    assert (first.status_code, again.status_code) == (200, 200)
    welcome = await next_message(member, 0)
    assert welcome.text.startswith(ZH("Welcome, {name}! You are now a grid worker of {area} ({department}).")
                                   .split("{")[0])
    await asyncio.sleep(0.5)
    assert len(member.inbox) == 1 and len(inbox_rows(db)) == 1
    with db.sessions() as s:
        person = s.exec(select(Person).where(Person.wecom_userid == "zhaolei")).one()
    assert (person.channel, person.roles, person.locale, person.telegram_user_id) == ("wecom", ["worker"], "zh_CN", None)

    # The code works once: another member sending it is told so, in the catalogue's words.
    other = WecomMember(wecom_emu, "qianfang")
    reused = await act(other, lambda: other.send_text(issued.token))
    assert reused.text == ZH("This invitation link was already used; each link works once. "
                             "Ask your supervisor for a new one.")
    stranger = await act(other, lambda: other.send_text("你好"))
    assert stranger.text == ZH("This WeCom account is not registered with OneGrid yet. "
                               "Send the invitation code your supervisor gave you.")


async def test_the_roster_binds_a_telegram_worker_to_wecom_and_messages_follow(world, emulator, wecom_emu, db,
                                                                               clock) -> None:
    worker_id = await asyncio.to_thread(add_worker, db.sessions, clock.now(), 9401, on_duty=False, locale="zh_CN")
    await asyncio.to_thread(bind_wecom_userid, world.ctx, person_id=worker_id, wecom_userid="sunli")
    try:
        await asyncio.to_thread(bind_wecom_userid, world.ctx, person_id=worker_id + 1000, wecom_userid="sunli")
    except RosterError:
        pass
    else:
        raise AssertionError("a userid bound to someone else must be refused")
    member = WecomMember(wecom_emu, "sunli")
    duty = await act(member, lambda: member.click_menu("duty"))
    assert duty.text == ZH("🟢 You are on duty. New work orders of your area will come here.")
    await asyncio.sleep(0.3)
    assert emulator.sent(9401) == []  # the Telegram chat of the same person got nothing


async def test_an_expired_token_is_renewed_and_limits_and_faults_are_waited_out(world, wecom_emu, db, clock,
                                                                               sleeps) -> None:
    await asyncio.to_thread(add_wecom_person, db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                            department_code="greening_appearance", on_duty=False)
    member = WecomMember(wecom_emu, "wangwei")
    await act(member, lambda: member.click_menu("duty"))  # a token is fetched and used
    assert wecom_emu.token_grants == 1

    clock.advance(seconds=1)  # a second click (the same second would be WeCom's redelivery of the first)
    wecom_emu.expire_tokens()  # 42001 on the next call
    wecom_emu.fail_next(45009, times=2)
    wecom_emu.fail_next(503, times=1)
    off = await act(member, lambda: member.click_menu("duty"))
    assert off.text == ZH("⚪ You are off duty and will get no new work orders. Orders you hold stay yours.")
    codes = [code for path, code in wecom_emu.requests if path == "message/send"]
    assert codes[1:] == [42001, 45009, 45009, 503, 0]
    assert wecom_emu.token_grants == 2
    assert sleeps.waits and len(sleeps.waits) == 3  # each limit and fault waited out, none really slept

    # The token is also renewed before it runs out, by the clock.
    clock.advance(seconds=wecom_emu.token_ttl_s - 60)  # an hour and 59 minutes later
    await act(member, lambda: member.click_menu("duty"))
    assert wecom_emu.token_grants == 3
    assert [code for path, code in wecom_emu.requests if path == "message/send"][6:] == [0]  # no 42001 first


async def test_a_message_wecom_refuses_for_good_is_dead_lettered(world, wecom_emu, db, clock) -> None:
    await asyncio.to_thread(add_wecom_person, db.sessions, clock.now(), "wangwei", roles=["worker"], area_code=GRID,
                            department_code="greening_appearance", on_duty=False)
    member = WecomMember(wecom_emu, "wangwei")
    wecom_emu.fail_next(81013)  # the member left the corp
    response = await member.click_menu("duty")
    assert response.status_code == 200
    [row] = await until(lambda: [r for r in wecom_rows(db) if r.status == NotificationStatus.FAILED])
    assert "81013" in row.last_error and member.inbox == []
