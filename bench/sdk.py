"""The benches' raw-SDK baseline: an appointment journey started straight through the Temporal
SDK's `start_workflow` (no API, no database row), with the id and search attributes the API's
own start gives it. Every bench that compares our path with the SDK's uses this one call."""

from __future__ import annotations

import uuid
from datetime import datetime

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from contracts.appointment import APPOINTMENT_WORKFLOW, AppointmentInput, appointment_workflow_id
from contracts.policy import JourneyPolicy
from core import search_attributes as sa


async def start_appointment(
    client: Client,
    task_queue: str,
    *,
    clinic_id: str,
    doctor_id: str,
    patient_id: str,
    starts_at: datetime,
    policy: JourneyPolicy,
    service: str = "Check-up",
    timezone: str = "Europe/Kyiv",
    booked_at: datetime | None = None,
    appointment_id: str | None = None,
) -> str:
    """Start one 30-minute visit's journey; returns its appointment id (`appointment_id`, the
    id of a row booked beforehand, or a fresh uuid: a journey with no row)."""
    aid = appointment_id or uuid.uuid4().hex
    await client.start_workflow(
        APPOINTMENT_WORKFLOW,
        AppointmentInput(
            appointment_id=aid,
            clinic_id=clinic_id,
            patient_id=patient_id,
            doctor_id=doctor_id,
            starts_at=starts_at,
            duration_minutes=30,
            service=service,
            timezone=timezone,
            policy=policy,
            booked_at=booked_at,
        ),
        id=appointment_workflow_id(aid),
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.CLINIC_ID, clinic_id),
                SearchAttributePair(sa.APPOINTMENT_STAGE, "booked"),
                SearchAttributePair(sa.APPOINTMENT_START, starts_at),
            ]
        ),
    )
    return aid
