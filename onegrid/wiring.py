"""The one place that says who reacts to which domain event (cosmicpython's EVENT_HANDLERS), and how urgently.

Services publish plain events (models/events/); each channel contributes renderers per event. Find the
code of any message by looking its event up here, then in the channel's renderer module. PRIORITIES
gives the delivery class (models.tables.Priority) of what each event's renderers queue; an event not
listed there queues at REPLY.
"""

from __future__ import annotations

from models.events import Event
from models.events import alarms as alm
from models.events import campaigns as cmp
from models.events import case_actions as act
from models.events import field as fld
from models.events import resident as res
from models.events import staff as stf
from models.events import supervision as sup
from models.events import work as wrk
from models.tables import Priority
from bot.renderers import (alarms, campaigns, case_actions, field, patrol, resident, staff, supervision, warnings,
                           work)
from bot.renderers.drill import labelled
from services.bus import EventBus, PriorityTable, Renderer, merge_tables
from wecom import renderers as wecom_renderers


def _escalation_priority(event: sup.CaseEscalated) -> int:
    return Priority.LIFE_SAFETY if event.final else Priority.SUPERVISION


PRIORITIES: PriorityTable = {
    wrk.OfferRetracted: Priority.WORK_ORDER,
    wrk.OrderWithdrawn: Priority.WORK_ORDER,
    wrk.OfferMade: Priority.WORK_ORDER,
    wrk.DispatchEscalated: Priority.SUPERVISION,
    res.CaseStatusChanged: Priority.RESIDENT_UPDATE,
    res.FeedbackRequested: Priority.RESIDENT_UPDATE,
    sup.VerificationRequested: Priority.SUPERVISION,
    sup.ClosureApproved: Priority.SUPERVISION,
    sup.ClosureRejected: Priority.WORK_ORDER,  # the worker must go back to the site
    sup.ClosedBySource: Priority.SUPERVISION,
    sup.SourceReportsGone: Priority.SUPERVISION,
    sup.ExtensionRequested: Priority.SUPERVISION,
    sup.ExtensionGranted: Priority.SUPERVISION,
    sup.ExtensionRefused: Priority.SUPERVISION,
    sup.CaseEscalated: _escalation_priority,
    sup.GroupsPinged: Priority.SUPERVISION,
    sup.ShelfReviewDue: Priority.SUPERVISION,
    sup.CaseTakenOver: Priority.WORK_ORDER,
    stf.SpotCheckRequested: Priority.SUPERVISION,
    stf.SpotCheckFailed: Priority.SUPERVISION,
    stf.DigestReady: Priority.HOUSEKEEPING,
    stf.StaffMenuChanged: Priority.HOUSEKEEPING,
    fld.ProgressNoted: Priority.SUPERVISION,
    fld.HeldOrdersReleased: Priority.SUPERVISION,
    alm.WelfareEscalated: Priority.LIFE_SAFETY,
    alm.WelfareOutcomeRecorded: Priority.LIFE_SAFETY,
    alm.CoverageGapFound: Priority.SUPERVISION,
    cmp.WarningIssued: Priority.LIFE_SAFETY,
    cmp.WarningReminderDue: Priority.LIFE_SAFETY,
    cmp.CampaignStarted: Priority.WORK_ORDER,
    cmp.CampaignEnded: Priority.SUPERVISION,
    act.ReworkOrdered: Priority.WORK_ORDER,  # the worker must go back to the site
    act.ClosedByOffice: Priority.SUPERVISION,
    act.CaseCancelled: Priority.SUPERVISION,
    act.CaseMerged: Priority.RESIDENT_UPDATE,
}


def event_table() -> dict[type[Event], list[Renderer]]:
    """Event type -> renderers, for every channel wired in this build: Telegram, then WeCom (staff only).

    Each person's messages go to the channel they use (`Person.channel`): the Telegram renderers' rows
    are dropped for WeCom users (services/notify.py), the WeCom renderers write only for them.
    """
    table = merge_tables([work.RENDERERS, supervision.RENDERERS, resident.RENDERERS, staff.RENDERERS,
                          warnings.RENDERERS, campaigns.RENDERERS, wecom_renderers.RENDERERS, field.RENDERERS,
                          alarms.RENDERERS, patrol.RENDERERS, case_actions.RENDERERS])
    # Every Telegram message about a drill case starts with the drill label (bot/renderers/drill.py).
    return {event: [labelled(render) for render in renderers] for event, renderers in table.items()}


def make_bus() -> EventBus:
    return EventBus(event_table(), PRIORITIES)
