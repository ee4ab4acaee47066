"""Activity registry: every journey's activity objects, built once per worker with its deps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.appointments import AppointmentActivities
from activities.campaigns import CampaignActivities
from activities.email import EmailActivities
from activities.imports import ImportActivities
from activities.invoices import InvoiceActivities
from activities.messaging import MessagingActivities
from activities.reports import ReportActivities
from activities.tasks import TaskActivities
from activities.treatment import TreatmentActivities
from activities.waitlist import WaitlistActivities
from core.deps import Deps


def build_activities(deps: Deps) -> list[Callable[..., Any]]:
    tasks = TaskActivities(deps)
    messaging = MessagingActivities(deps)
    appointments = AppointmentActivities(deps, messaging)
    plans = TreatmentActivities(deps)
    reports = ReportActivities(deps)
    imports = ImportActivities(deps)
    campaigns = CampaignActivities(deps, messaging)
    waitlist = WaitlistActivities(deps)
    return [
        tasks.create_operator_task,
        tasks.cancel_operator_tasks,
        messaging.send_patient_message,
        messaging.place_voice_call,
        appointments.load_appointment_context,
        appointments.sync_appointment,
        appointments.send_appointment_message,
        plans.book_plan_appointment,
        plans.sync_treatment_plan,
        InvoiceActivities(deps).sync_invoice,
        EmailActivities(deps).send_email,
        reports.build_expense_report,
        reports.build_management_pack,
        reports.management_pack_recipients,
        imports.prepare_import,
        imports.apply_import_batch,
        imports.finish_import,
        imports.scan_drop_folder,
        campaigns.claim_campaign_audience,
        campaigns.campaign_journey_started,
        campaigns.send_campaign_message,
        campaigns.finish_campaign_send,
        waitlist.waitlist_candidates,
        waitlist.book_from_waitlist,
        waitlist.close_slot_offer,
    ]
