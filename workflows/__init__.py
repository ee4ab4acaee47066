"""Workflow registry: every journey module adds its workflow class to WORKFLOWS.

Workflow modules are pure and deterministic: no sqlmodel, httpx or structlog imports.
"""

from __future__ import annotations

from workflows.appointment import AppointmentJourney

WORKFLOWS: list[type] = [AppointmentJourney]

# Supplier invoices (SPEC §5) and the monthly spending report.
from workflows.invoice import InvoiceApproval  # noqa: E402
from workflows.monthly_report import MonthlyExpenseReport  # noqa: E402

WORKFLOWS += [InvoiceApproval, MonthlyExpenseReport]

# Treatment plans (SPEC §4): long-lived plan journeys with child appointment journeys.
from workflows.treatment_plan import TreatmentPlanJourney  # noqa: E402

WORKFLOWS += [TreatmentPlanJourney]
