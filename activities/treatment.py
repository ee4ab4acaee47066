"""Treatment-plan activities: book a plan's visit (the appointment row a child journey runs
for) and mirror the plan into the database for the operators' list. Both idempotent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.appointment import appointment_workflow_id
from contracts.treatment_plan import BookedAppointment, PlanBooking, PlanSnapshot, TreatmentPlanActivityStubs
from conversations.questions import expire
from core.deps import Deps
from core.logging import get_logger
from models.appointment import Appointment, doctor_clash
from models.core import Clinic, Doctor, Patient
from models.points import refund_plan
from models.treatment import upsert_plan
from models.waitlist import take_off_list

log = get_logger("activities.treatment")


class TreatmentActivities(TreatmentPlanActivityStubs):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="sync_treatment_plan")
    async def sync_treatment_plan(self, snap: PlanSnapshot) -> bool:
        for _ in range(2):
            async with self.deps.sessions() as s:
                changed = await upsert_plan(s, snap)
                # Questions about a stage the plan has left (or a closed plan) are moot.
                if snap.status != "active":
                    await expire(s, snap.plan_id, f"the plan is {snap.status}")
                else:
                    await expire(s, snap.plan_id, f"the plan moved to {snap.stage}", state_not=snap.stage)
                try:
                    if snap.status == "cancelled":  # its points go back, once (keyed by the plan id)
                        await refund_plan(s, snap.plan_id)
                    await s.commit()
                    return changed
                except IntegrityError:  # the API inserted the same plan a moment ago
                    await s.rollback()
        raise RuntimeError("treatment plan row kept conflicting; retrying")

    @activity.defn(name="book_plan_appointment")
    async def book_plan_appointment(self, b: PlanBooking) -> BookedAppointment:
        wf_id = appointment_workflow_id(b.appointment_id)
        async with self.deps.sessions() as s:
            existing = await s.get(Appointment, b.appointment_id)
            if existing is not None:  # a retried attempt: the row is already there
                return BookedAppointment(b.appointment_id, existing.workflow_id, created=False)
            doctor = await s.get(Doctor, b.doctor_id)
            if doctor is None or doctor.clinic_id != b.clinic_id:
                raise ApplicationError(
                    f"doctor {b.doctor_id} does not work at this clinic",
                    {"field": "appointment.doctor_id"},
                    type="NotFound",
                    non_retryable=True,
                )
            if await s.get(Patient, b.patient_id) is None:
                raise ApplicationError(f"patient {b.patient_id} does not exist", type="NotFound", non_retryable=True)
            ends_at = b.starts_at + timedelta(minutes=b.duration_minutes)
            clash = await doctor_clash(s, b.doctor_id, b.starts_at, ends_at)
            if clash is not None:
                raise ApplicationError(
                    "the doctor already has a visit at that time "
                    f"({clash.starts_at.isoformat()}–{clash.ends_at.isoformat()})",
                    {"field": "appointment.starts_at", "conflicting_appointment_id": clash.id},
                    type="Conflict",
                    non_retryable=True,
                )
            appt = Appointment(
                id=b.appointment_id,
                clinic_id=b.clinic_id,
                doctor_id=b.doctor_id,
                patient_id=b.patient_id,
                service=b.service,
                starts_at=b.starts_at,
                ends_at=ends_at,
                duration_minutes=b.duration_minutes,
                stage="booked",
                workflow_id=wf_id,
                idempotency_key=b.idempotency_key,
                plan_id=b.plan_id,
                source="plan",
                history=[],
            )
            if (clinic := await s.get(Clinic, b.clinic_id)) is not None:
                await take_off_list(s, appt, clinic.timezone)  # a wish this visit satisfies is met
            s.add(appt)
            try:
                await s.commit()
            except IntegrityError:  # a concurrent attempt won: same row, same effect
                await s.rollback()
                return BookedAppointment(b.appointment_id, wf_id, created=False)
        log.info("plan visit booked", appointment_id=b.appointment_id, plan_id=b.plan_id)
        return BookedAppointment(b.appointment_id, wf_id, created=True)
