"""Workflow registry: every journey the worker runs (the worker imports this, nothing else).

Kept out of `workflows/__init__.py` on purpose: the workflow sandbox re-imports a journey's
module for every workflow instance it builds, and importing `workflows.appointment` first runs
the package's `__init__`. If that imported every journey, each appointment instance would also
re-execute the invoice, plan and report modules.
"""

from __future__ import annotations

from workflows.appointment import AppointmentJourney
from workflows.campaign import CampaignJourney, CampaignRun
from workflows.invoice import InvoiceApproval
from workflows.management_pack import MonthlyManagementPack
from workflows.mis_import import MisDropFolder, MisImport
from workflows.monthly_report import MonthlyExpenseReport
from workflows.slot_offer import SlotOfferJourney
from workflows.treatment_plan import TreatmentPlanJourney

WORKFLOWS: tuple[type, ...] = (
    AppointmentJourney,  # SPEC §3
    TreatmentPlanJourney,  # SPEC §4, books visits as child AppointmentJourneys
    InvoiceApproval,  # SPEC §5
    MonthlyExpenseReport,  # SPEC §5.7, started by the monthly Schedule
    MonthlyManagementPack,  # SPEC §6 reports (issue 13), started by the monthly Schedule
    MisImport,  # SPEC §6, one per MIS file
    MisDropFolder,  # SPEC §6, started by each clinic's daily drop-folder Schedule
    CampaignRun,  # SPEC §6 recall / bonus / birthday (issue 12), started by each clinic's Schedules
    CampaignJourney,  # one patient's invitation, started by CampaignRun
    SlotOfferJourney,  # issue 12: a freed slot offered to the waiting list
)
