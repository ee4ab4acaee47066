"""Appointment journey activities: load what messages need, and mirror the journey into the
`appointment` row (idempotent upsert: replaying the same snapshot changes nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from conversations.questions import expire
from core.logging import get_logger
from models.appointment import Appointment, apply_confirmation_facts
from models.appointment_journey import AppointmentContext
from models.core import Clinic, Doctor
from workflows.appointment import AppointmentSnapshot, ContextRequest

log = get_logger("activities.appointments")

CONFIRMATION_KINDS = ("confirmation", "voice_confirmation")


async def expire_moot_questions(s: AsyncSession, snap: AppointmentSnapshot) -> None:
    """The journey no longer waits for these answers: a reschedule (the old time's asks), a
    confirmation by any means, the visit being over, cancelled or missed."""
    aid = snap.appointment_id
    await expire(s, aid, "the appointment was rescheduled", older_version_than=snap.version)
    if snap.stage in ("cancelled", "no_show"):
        await expire(s, aid, f"the appointment is {snap.stage}")
    elif snap.stage in ("confirmed", "checked_in", "finished"):
        await expire(s, aid, f"the appointment is {snap.stage}", kinds=CONFIRMATION_KINDS)


class AppointmentActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="load_appointment_context")
    async def load_appointment_context(self, req: ContextRequest) -> AppointmentContext:
        async with self.deps.sessions() as s:
            clinic = await s.get(Clinic, req.clinic_id)
            doctor = await s.get(Doctor, req.doctor_id)
        if clinic is None or doctor is None:
            raise ApplicationError(
                "clinic or doctor of the appointment no longer exists", type="NotFound", non_retryable=True
            )
        base = self.deps.settings.public_base_url.rstrip("/")
        return AppointmentContext(
            clinic_name=clinic.name,
            clinic_address=clinic.address,
            clinic_phone=clinic.phone,
            review_url=clinic.review_url,
            doctor_name=doctor.full_name,
            feedback_url=f"{base}/feedback?appointment={req.appointment_id}",
            link=f"{base}/a/{req.appointment_id}",
        )

    @activity.defn(name="sync_appointment")
    async def sync_appointment(self, snap: AppointmentSnapshot) -> None:
        history = [{"at": h.at.isoformat(), "event": h.event, "stage": h.stage} for h in snap.history]
        async with self.deps.sessions() as s:
            row = await s.get(Appointment, snap.appointment_id)
            if row is None:  # e.g. a treatment plan started the journey as a child
                row = Appointment(
                    id=snap.appointment_id,
                    clinic_id=snap.clinic_id,
                    doctor_id=snap.doctor_id,
                    patient_id=snap.patient_id,
                    service=snap.service,
                    workflow_id=snap.workflow_id,
                    plan_id=snap.plan_id,
                    starts_at=snap.starts_at,
                    ends_at=snap.ends_at,
                    duration_minutes=snap.duration_minutes,
                )
            row.stage = snap.stage
            row.version = snap.version
            row.starts_at = snap.starts_at
            row.ends_at = snap.ends_at
            row.duration_minutes = snap.duration_minutes
            row.asks_sent = snap.asks_sent
            row.voice_calls = snap.voice_calls
            row.nps = snap.nps
            row.cancel_reason = snap.cancel_reason
            row.history = history
            apply_confirmation_facts(row, ((h.at, h.event) for h in snap.history))
            row.updated_at = datetime.now(UTC)
            s.add(row)
            await expire_moot_questions(s, snap)
            await s.commit()
        log.info("appointment synced", appointment_id=snap.appointment_id, stage=snap.stage, version=snap.version)


__all__ = ["AppointmentActivities"]
