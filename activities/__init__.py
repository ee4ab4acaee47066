"""Activity registry: every journey adds its activity objects in `build_activities`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.deps import Deps
from activities.appointments import AppointmentActivities
from activities.messaging import MessagingActivities
from activities.tasks import TaskActivities


def build_activities(deps: Deps) -> list[Callable[..., Any]]:
    tasks = TaskActivities(deps)
    messaging = MessagingActivities(deps)
    return [
        tasks.create_operator_task,
        tasks.cancel_operator_tasks,
        *_invoices(deps),
        *_appointments(deps),
        messaging.send_patient_message,
        messaging.place_voice_call,
        *_treatment(deps),
    ]


def _treatment(deps: Deps) -> list[Callable[..., Any]]:
    from activities.treatment import TreatmentActivities

    t = TreatmentActivities(deps)
    return [t.book_plan_appointment, t.sync_treatment_plan]


def _appointments(deps: Deps) -> list[Callable[..., Any]]:
    a = AppointmentActivities(deps)
    return [a.load_appointment_context, a.sync_appointment]


def _invoices(deps: Deps) -> list[Callable[..., Any]]:
    from activities.email import EmailActivities
    from activities.invoices import InvoiceActivities
    from activities.reports import ReportActivities

    return [InvoiceActivities(deps).sync_invoice, EmailActivities(deps).send_email,
            ReportActivities(deps).build_expense_report]
