"""Intake from machines and Open311 clients: one import path for the API and the scheduler.

The parts, one module each:
- `services.intake_machine`: cases from cameras, sensors and the 12345 hotline, opened once per
  event and folded by their source (`intake_event`).
- `services.intake_clears`: the source says the problem is gone (`clear_case`), and clears that
  had to wait (`apply_pending_clears`).
- `services.intake_rules`: per category, what a clear does and how long repeats fold.
- `services.intake_open311`: residents' reports through Open311 clients and the category questions.
"""

from __future__ import annotations

from models.api import ServiceQuestion  # api/open311.py reads the table through this module
from services.intake_clears import ClearResult, NotMachineCase, apply_pending_clears, clear_case
from services.intake_machine import (
    MACHINE_SOURCES,
    IntakeInProgress,
    IntakeResult,
    MachineReport,
    OutsideArea,
    intake_event,
    intake_in,
    locate,
)
from services.intake_open311 import (
    BadAttributes,
    ServiceRequest,
    service_questions,
    set_service_questions,
    submit_service_request,
    update_case_details,
)
from services.intake_rules import intake_rule, set_intake_rule

__all__ = [
    "ServiceQuestion",
    "MACHINE_SOURCES",
    "BadAttributes",
    "ClearResult",
    "IntakeInProgress",
    "IntakeResult",
    "MachineReport",
    "NotMachineCase",
    "OutsideArea",
    "apply_pending_clears",
    "clear_case",
    "intake_event",
    "intake_in",
    "locate",
    "intake_rule",
    "ServiceRequest",
    "service_questions",
    "set_intake_rule",
    "set_service_questions",
    "submit_service_request",
    "update_case_details",
]
