"""The sandbox console page's own words, in every supported locale (the bot's messages come translated by the bot).

One catalogue per locale is sent to the page; each pane uses its persona's locale, the header and
timeline the viewer's.
"""

from __future__ import annotations

from typing import Any

from models.lifecycle import Action, Status
from onegrid.i18n import N_, SUPPORTED, gettext_for

UI_STRINGS: dict[str, str] = {
    "title": N_("OneGrid sandbox"),
    "subtitle": N_("Chat with the OneGrid bot as demo people. Nothing here reaches Telegram."),
    "people": N_("People"),
    "add_resident": N_("Add a resident"),
    "new_resident_name": N_("Name of the new resident"),
    "live": N_("live"),
    "reconnecting": N_("reconnecting…"),
    "send": N_("Send"),
    "message": N_("Message"),
    "photo": N_("Photo"),
    "caption": N_("Caption (optional)"),
    "location": N_("Location"),
    "channel_wecom": N_("WeCom / 政务微信"),
    "start": N_("Start"),
    "empty_chat": N_("No messages yet. Press Start to talk to the bot."),
    "menu": N_("Menu"),
    "keyboard": N_("Keyboard"),
    "edited": N_("edited"),
    "live_location": N_("Live location"),
    "location_label": N_("Location"),
    "contact": N_("Contact"),
    "document": N_("File"),
    "unsupported": N_("A message the console cannot show"),
    "pick_title": N_("Share a location"),
    "pick_hint": N_("Click on the map where you are. Scroll to zoom, drag to move."),
    "pick_live": N_("Share as live location (15 minutes)"),
    "pick_send": N_("Send location"),
    "cancel": N_("Cancel"),
    "outside": N_("Outside every grid"),
    "zoom_in": N_("Zoom in"),
    "zoom_out": N_("Zoom out"),
    "zoom_home": N_("Back to the demo street"),
    "on_duty": N_("on duty"),
    "off_duty": N_("off duty"),
    "role_resident": N_("Resident"),
    "role_worker": N_("Grid worker"),
    "role_supervisor": N_("Supervisor"),
    "role_dispatcher": N_("Dispatcher"),
    "role_system": N_("System"),
    "cases": N_("Recent cases"),
    "no_cases": N_("No cases yet."),
    "timeline": N_("Case timeline"),
    "pick_case": N_("Select a case to see its audit trail."),
    "language": N_("Language"),
    "error": N_("Could not send: {reason}"),
    "err_not_a_picture": N_("that file is not a picture"),
    "err_too_large": N_("the picture is too large"),
    "err_button_gone": N_("that button is no longer there"),
    "err_message_gone": N_("that message is gone"),
    "err_empty": N_("the message is empty"),
    "err_unknown_persona": N_("this person is not in the sandbox"),
    "err_too_many": N_("no more residents can be added"),
    "err_network": N_("the sandbox is not answering"),
}
STATUS_LABELS: dict[str, str] = {
    Status.REPORTED: N_("reported"),
    Status.REGISTERED: N_("registered"),
    Status.DISPATCHED: N_("dispatched"),
    Status.IN_PROGRESS: N_("in progress"),
    Status.EXTENSION_REQUESTED: N_("extension requested"),
    Status.AWAITING_VERIFICATION: N_("awaiting verification"),
    Status.REWORK: N_("rework"),
    Status.RETURNED: N_("returned to dispatch"),
    Status.SHELVED: N_("shelved"),
    Status.CLOSED: N_("closed"),
    Status.CANCELLED: N_("cancelled"),
    Status.MERGED: N_("merged"),
}
ACTION_LABELS: dict[str, str] = {
    Action.REPORT: N_("Reported"),
    Action.REGISTER: N_("Registered"),
    Action.DISPATCH: N_("Dispatched"),
    Action.REASSIGN: N_("Reassigned"),
    Action.ACCEPT: N_("Accepted"),
    Action.RETURN: N_("Returned"),
    Action.COMPLETE: N_("Completed"),
    Action.APPROVE: N_("Approved"),
    Action.REJECT: N_("Rejected"),
    Action.REQUEST_EXTENSION: N_("Extension requested"),
    Action.GRANT_EXTENSION: N_("Extension granted"),
    Action.REFUSE_EXTENSION: N_("Extension refused"),
    Action.SHELVE: N_("Shelved"),
    Action.UNSHELVE: N_("Unshelved"),
    Action.REOPEN: N_("Reopened"),
    Action.CANCEL: N_("Cancelled"),
    Action.MERGE: N_("Merged"),
    Action.CLEAR_AT_SOURCE: N_("Cleared at source"),
}


def catalogues() -> dict[str, dict[str, Any]]:
    """The page's words in every supported locale."""
    result: dict[str, dict[str, Any]] = {}
    for locale in SUPPORTED:
        _ = gettext_for(locale)
        result[locale] = {
            "ui": {key: _(text) for key, text in UI_STRINGS.items()},
            "status": {str(key): _(text) for key, text in STATUS_LABELS.items()},
            "action": {str(key): _(text) for key, text in ACTION_LABELS.items()},
        }
    return result
