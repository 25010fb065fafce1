"""Staff onboarding through `onegrid invite` and the deep link, and deactivation by a supervisor."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from sqlmodel import func, select
from typer.testing import CliRunner

from models.lifecycle import Status
from models.tables import Case, Invitation, Person
from onegrid.cli import cli
from services.invitations import create_invitation
from tests.worker_support import (  # noqa: F401  (emulator and world are fixtures)
    GRID,
    STREET,
    add_supervisor,
    add_worker,
    answer_to,
    button,
    button_texts,
    emulator,
    report,
    world,
)


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def cli_env(db, tmp_path, **extra: str) -> dict[str, str]:  # noqa: ANN001
    return {"ONEGRID_DATABASE_URL": db.url, "ONEGRID_DATA_DIR": str(tmp_path / "cli"), **extra}


def token_of(link: str, username: str = "onegrid_test_bot") -> str:
    prefix = f"https://t.me/{username}?start="
    assert link.startswith(prefix), link
    return link[len(prefix):]


def people(db) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(Person)).one()


async def test_an_invitation_link_from_the_command_line_binds_the_account(world, emulator, db, tmp_path) -> None:
    code, out, err = await asyncio.to_thread(
        run_cli, ["invite", "--role", "worker", "--area", GRID, "--department", "greening_appearance"],
        cli_env(db, tmp_path, ONEGRID_BOT_USERNAME="@onegrid_test_bot"))
    assert code == 0, err
    token = token_of(out.strip())
    assert re.search(r"worker of SH-HP-01-001 \(greening_appearance\); works once, until \d{4}-\d\d-\d\d \d\d:\d\d UTC", err)

    zhou = emulator.user(9301, first_name="Zhou", last_name="Min", username="zhoumin", language_code="en")
    await zhou.send_command("/start", token)
    [welcome] = await zhou.wait_inbox(1)
    assert welcome["text"] == ("Welcome, Zhou Min! You are now a grid worker of East Nanjing Road Grid 1 "
                               "(Landscaping and City Appearance Administration).\n"
                               "Send /duty to go on duty and receive work orders; /tasks lists your orders.")
    with db.sessions() as s:
        person = s.exec(select(Person).where(Person.telegram_user_id == 9301)).one()
        invitation = s.exec(select(Invitation)).one()
    assert (person.roles, person.area_code, person.department_code, person.on_duty, person.active) == (
        ["worker"], GRID, "greening_appearance", False, True)
    assert invitation.used_by_id == person.id and token not in invitation.token_hash

    # Now a worker: /duty works for them.
    await zhou.send_command("/duty")
    [_, duty] = await zhou.wait_inbox(2)
    assert duty["text"] == "🟢 You are on duty. New work orders of your area will come here."


async def test_a_supervisor_link_in_chinese(world, emulator, db) -> None:
    issued = await asyncio.to_thread(create_invitation, world.ctx, role="supervisor", area_code=STREET)
    chen = emulator.user(9302, first_name="陈", language_code="zh-hans")
    await chen.send_command("/start", issued.token)
    [welcome] = await chen.wait_inbox(1)
    assert welcome["text"].startswith("陈，欢迎！您现在是南京东路街道的监督员。")


async def test_reused_expired_and_forged_links_are_refused_and_bind_nothing(world, emulator, db, clock) -> None:
    used = await asyncio.to_thread(create_invitation, world.ctx, role="worker", area_code=GRID,
                                   department_code="greening_appearance")
    first = emulator.user(9311, first_name="First", language_code="en")
    await first.send_command("/start", used.token)
    await first.wait_inbox(1)
    expiring = await asyncio.to_thread(create_invitation, world.ctx, role="supervisor", area_code=STREET,
                                       ttl=timedelta(hours=1))
    clock.advance(hours=2)
    before = people(db)

    intruder = emulator.user(9312, first_name="Mallory", language_code="en")
    await intruder.send_command("/start", used.token)
    await intruder.send_command("/start", expiring.token)
    await intruder.send_command("/start", "inv_" + "x" * 32)
    replies = [m["text"] for m in await intruder.wait_inbox(3)]
    assert replies == [
        "This invitation link was already used; each link works once. Ask your supervisor for a new one.",
        "This invitation link has expired. Ask your supervisor for a new one.",
        "This invitation link is not valid. Ask your supervisor for a new one.",
    ]
    assert people(db) == before
    with db.sessions() as s:
        assert s.exec(select(Person).where(Person.telegram_user_id == 9312)).first() is None
        assert s.exec(select(Invitation).where(Invitation.id == expiring.invitation_id)).one().used_at is None


async def test_the_command_line_asks_telegram_for_the_bot_username(world, emulator, db, tmp_path) -> None:
    code, out, err = await asyncio.to_thread(
        run_cli, ["invite", "--role", "supervisor", "--area", STREET, "--hours", "2"],
        cli_env(db, tmp_path, ONEGRID_BOT_TOKEN=emulator.token, ONEGRID_TELEGRAM_API_URL=emulator.base_url))
    assert code == 0, err
    assert token_of(out.strip()).startswith("inv_")
    code, out, err = await asyncio.to_thread(
        run_cli, ["invite", "--role", "worker", "--area", GRID], cli_env(db, tmp_path, ONEGRID_BOT_USERNAME="b"))
    assert code == 1 and "a worker needs --department" in err and out == ""


async def test_a_supervisor_deactivates_a_worker_whose_order_goes_back_to_dispatch(world, emulator, db, clock) -> None:
    add_worker(db.sessions, clock.now(), 9321, name="Leaving Liu")
    add_supervisor(db.sessions, clock.now(), 9322, name="Boss Li")
    leaving = emulator.user(9321, first_name="Liu", language_code="en")
    boss = emulator.user(9322, first_name="Li", language_code="en")
    case = await asyncio.to_thread(report, world.ctx)
    [order] = await leaving.wait_inbox(1)
    await leaving.press(order, button(order, "wo:a:"))
    await answer_to(emulator, 9321)
    add_worker(db.sessions, clock.now(), 9323, name="Staying Sun")
    staying = emulator.user(9323, first_name="Sun", language_code="en")

    await boss.send_command("/workers")
    [listing] = await boss.wait_inbox(1)
    assert listing["text"] == ("👷 Workers of your area:\n"
                               "Leaving Liu · SH-HP-01-001 · greening_appearance · on duty\n"
                               "Staying Sun · SH-HP-01-001 · greening_appearance · on duty")
    assert button_texts(listing) == ["🚫 Deactivate Leaving Liu", "🚫 Deactivate Staying Sun"]
    await boss.press(listing, button(listing, "ss:d:"))
    [_, confirm] = await boss.wait_inbox(2)
    await boss.press(confirm, button(confirm, "ss:y:"))
    [*_, done] = await boss.wait_inbox(3)
    assert done["text"] == "Leaving Liu is deactivated. Orders sent back to dispatch: 1; offers withdrawn: 0."

    await emulator.wait_for(lambda: any("deactivated by Boss Li" in m.get("text", "") for m in leaving.inbox))
    [offer] = await staying.wait_inbox(1)
    assert offer["text"].startswith(f"🆕 Work order {case.number}")
    with db.sessions() as s:
        person = s.exec(select(Person).where(Person.telegram_user_id == 9321)).one()
        assert (person.active, person.on_duty) == (False, False)
        assert s.get(Case, case.id).status == Status.DISPATCHED
    # The old order message's buttons no longer work for them.
    accepted = leaving.inbox[0]
    await leaving.press(accepted, button(accepted, "wt:c:"))
    [_, refused] = await answer_to(emulator, 9321, 2)
    assert refused["text"] == "Your worker account is deactivated. Ask your supervisor if this is a mistake."
