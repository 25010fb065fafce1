"""How the resident side words statuses, timeline events, category kinds and reporters (Telegram texts)."""

from __future__ import annotations

from collections.abc import Callable

from models.lifecycle import Action, Status
from models.tables import Person
from onegrid.i18n import N_
from services.privacy import resident_tag

Gettext = Callable[[str], str]

STATUS_LABELS: dict[Status, str] = {
    Status.REPORTED: N_("reported"),
    Status.REGISTERED: N_("registered"),
    Status.DISPATCHED: N_("dispatched"),
    Status.IN_PROGRESS: N_("being handled"),
    Status.EXTENSION_REQUESTED: N_("being handled"),
    Status.AWAITING_VERIFICATION: N_("awaiting verification"),
    Status.REWORK: N_("returned for rework"),
    Status.RETURNED: N_("being dispatched again"),
    Status.SHELVED: N_("on hold"),
    Status.CLOSED: N_("closed"),
    Status.CANCELLED: N_("cancelled as invalid"),
    Status.MERGED: N_("merged with another case"),
}

# What a resident is told each event meant; internal steps (returned, extension asked) read plainly.
EVENT_LABELS: dict[Action, str] = {
    Action.REPORT: N_("reported"),
    Action.REGISTER: N_("registered"),
    Action.DISPATCH: N_("dispatched to the grid"),
    Action.REASSIGN: N_("reassigned"),
    Action.ACCEPT: N_("handling started"),
    Action.RETURN: N_("sent back for dispatch"),
    Action.COMPLETE: N_("work done, awaiting verification"),
    Action.APPROVE: N_("verified and closed"),
    Action.REJECT: N_("returned for rework after verification"),
    Action.REQUEST_EXTENSION: N_("more time requested"),
    Action.GRANT_EXTENSION: N_("deadline extended"),
    Action.REFUSE_EXTENSION: N_("extension refused"),
    Action.SHELVE: N_("put on hold"),
    Action.UNSHELVE: N_("taken up again"),
    Action.REOPEN: N_("reopened: not fixed"),
    Action.CANCEL: N_("cancelled as invalid"),
    Action.MERGE: N_("merged with another case"),
    Action.CLEAR_AT_SOURCE: N_("closed: the camera or sensor reports the problem gone"),
}

KIND_LABELS: dict[str, str] = {
    "environment": N_("Environment and sanitation"),
    "city_appearance": N_("Streets and shopfronts"),
    "traffic": N_("Parking and bikes"),
    "fire_safety": N_("Fire safety"),
    "roads": N_("Roads and facilities"),
    "building_safety": N_("Buildings"),
    "housing": N_("Housing"),
    "noise": N_("Noise"),
    "market": N_("Food and markets"),
    "community": N_("Neighbours and community"),
    "elderly_care": N_("Elderly care"),
}


def status_label(status: Status | str, _: Gettext) -> str:
    return _(STATUS_LABELS[Status(status)])


def kind_label(kind: str, _: Gettext) -> str:
    label = KIND_LABELS.get(kind)
    return _(label) if label else kind.replace("_", " ").capitalize()



def reporter_label(person: Person | None, gettext: Gettext) -> str:
    """How staff see a reporter, on every card and work order: never a name, not even a surname; the
    masked phone, or a pseudonym without one (`services.privacy.resident_tag`)."""
    if person is None or person.deleted_at is not None:
        return gettext("anonymous resident")
    return gettext("resident {phone}").format(phone=resident_tag(person.phone, person.id))
