"""What a supervisor is told when a supervision service refuses, worded alike on both channels: Telegram
(handlers/supervision_common.py) and WeCom (wecom/handlers_supervision.py) pass their reader's gettext."""

from __future__ import annotations

from collections.abc import Callable

from models.lifecycle import LifecycleError
from services import extensions, supervision_access
from services.cases import CaseNotFound

Gettext = Callable[[str], str]

REFUSALS = (supervision_access.SupervisionError, extensions.ExtensionError, CaseNotFound, LifecycleError)


def supervision_refusal(_: Gettext, exc: Exception) -> str:
    """What the supervisor is told when a service of REFUSALS refused."""
    if isinstance(exc, supervision_access.OutsideYourArea):
        return _("This case is outside your area.")
    if isinstance(exc, supervision_access.NotASupervisor):
        return _("Only an active supervisor of this area can do that.")
    if isinstance(exc, supervision_access.NotNow):
        return _("Case {number} cannot be changed that way now.").format(number=exc.number)
    if isinstance(exc, supervision_access.NotAGridWorker):
        return _("That person is not an active worker of the case's grid.")
    if isinstance(exc, supervision_access.WrongDepartment):
        return _("That worker's department has no part in this case.")
    if isinstance(exc, extensions.NotYourCase):
        return _("You do not hold this case.")
    if isinstance(exc, extensions.AlreadyPending):
        return _("An extension request for this case is already waiting for the supervisor.")
    if isinstance(exc, extensions.ReasonRequired):
        return _("Please write the reason in a few words.")
    if isinstance(exc, extensions.BadDuration):
        return _("That duration is not possible.")
    if isinstance(exc, CaseNotFound):
        return _("This case does not exist.")
    return _("That cannot be done now.")
