"""Onboarding, menus and deactivation publish their events with the right fields (a real EventBus with a
recording table), and the Telegram renderers give the menu's words and the deactivation notice."""

from __future__ import annotations

import pytest

from models.events import Event
from models.events.staff import InvitationRedeemed, StaffMenuChanged, WorkerDeactivated
from models.lifecycle import Role
from services import invitations, staff_menus
from services.bus import EventBus
from services.context import ServiceContext
from tests.worker_support import GRID, STREET, add_person, add_supervisor, add_worker, make_ctx, queued

RECORDED_TYPES = (InvitationRedeemed, StaffMenuChanged, WorkerDeactivated)


@pytest.fixture
def recorded() -> list[Event]:
    return []


@pytest.fixture
def ctx(db, clock, tmp_path, recorded) -> ServiceContext:  # noqa: ANN001
    ctx = make_ctx(db.sessions, clock, tmp_path)
    ctx.bus = EventBus({kind: [lambda _s, _c, event: recorded.append(event)] for kind in RECORDED_TYPES})
    return ctx


def test_redeeming_publishes_who_joined_as_what(ctx, recorded) -> None:
    issued = invitations.create_invitation(ctx, role="worker", area_code=GRID, department_code="urban_management")
    binding = invitations.redeem_invitation(ctx, token=issued.token, telegram_user_id=7101, display_name="New")
    # The binding and the new role's menu, in that order, in the redeeming transaction.
    assert recorded == [InvitationRedeemed(invitation_id=issued.invitation_id, person_id=binding.person_id,
                                           role=Role.WORKER, area_code=GRID, department_code="urban_management",
                                           display_name="New"),
                        StaffMenuChanged(person_id=binding.person_id, commands=("tasks", "patrol", "duty", "extend", "help"))]


def test_menus_publish_the_commands_of_each_role(ctx, db, clock, recorded) -> None:
    worker = add_worker(db.sessions, clock.now(), 7201)
    both = add_person(db.sessions, clock.now(), telegram_user_id=7202, roles=["worker", "supervisor"],
                      area_code=GRID, department_code="greening_appearance")
    resident = add_person(db.sessions, clock.now(), telegram_user_id=7203, roles=["resident"])
    assert staff_menus.queue_menu_for(ctx, person_id=worker) is True
    assert staff_menus.queue_menu_for(ctx, person_id=both) is True
    assert staff_menus.queue_menu_for(ctx, person_id=resident) is False
    assert recorded == [
        StaffMenuChanged(person_id=worker, commands=("tasks", "patrol", "duty", "extend", "help")),
        StaffMenuChanged(person_id=both, commands=("tasks", "patrol", "duty", "extend", "verify", "stats", "topic",
                                                   "workers", "case", "help")),
    ]


def test_deactivation_publishes_what_went_back(ctx, db, clock, recorded) -> None:
    leaving = add_worker(db.sessions, clock.now(), 7301)
    boss = add_supervisor(db.sessions, clock.now(), 7302, area_code=STREET, name="Boss Zhang")
    invitations.deactivate_worker(ctx, worker_id=leaving, supervisor_id=boss)
    assert recorded == [WorkerDeactivated(worker_id=leaving, by_name="Boss Zhang", returned=0, withdrawn=0)]
    assert queued(db.sessions, 7301) == []  # no renderer in this table: nobody is told


def test_the_menu_renderer_describes_commands_in_the_persons_language(db, clock, tmp_path) -> None:
    ctx = make_ctx(db.sessions, clock, tmp_path)  # the full Telegram table
    person = add_person(db.sessions, clock.now(), telegram_user_id=7401, roles=["supervisor"], area_code=STREET,
                        locale="zh_CN")
    assert staff_menus.queue_menu_for(ctx, person_id=person)
    [menu] = queued(db.sessions, 7401, "setMyCommands")
    assert menu.payload["scope"] == {"type": "chat", "chat_id": 7401}
    assert [c["command"] for c in menu.payload["commands"]] == ["verify", "stats", "topic", "workers", "case", "help"]
    assert all(c["description"] and not c["description"].isascii() for c in menu.payload["commands"])
