"""Appointment journey activities: load what messages need, and mirror the journey into the
`appointment` row (idempotent upsert: replaying the same snapshot changes nothing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeats
from activities.messaging import MessagingActivities
from contracts.appointment import (
    AppointmentActivityStubs,
    AppointmentContext,
    AppointmentSend,
    AppointmentSnapshot,
    ContextRequest,
)
from contracts.common import SendResult
from conversations.questions import expire
from core import metrics, waitlist
from core.deps import Deps
from core.links import page_url
from core.logging import get_logger
from models.appointment import Appointment, apply_confirmation_facts, confirmation_facts
from models.core import Clinic, Doctor

log = get_logger("activities.appointments")

CONFIRMATION_KINDS = ("confirmation", "voice_confirmation")


async def expire_moot_questions(s: AsyncSession, snap: AppointmentSnapshot) -> None:
    """The journey no longer waits for these answers: a reschedule (the old time's asks), a
    confirmation by any means, the visit being over, cancelled or missed."""
    aid = snap.appointment_id
    if snap.version > 1:  # (no question is about a version before the first: nothing to read)
        await expire(s, aid, "the appointment was rescheduled", older_version_than=snap.version)
    if snap.stage in ("cancelled", "no_show"):
        await expire(s, aid, f"the appointment is {snap.stage}")
    elif snap.stage in ("confirmed", "checked_in", "finished"):
        await expire(s, aid, f"the appointment is {snap.stage}", kinds=CONFIRMATION_KINDS)


FREEING = ("cancelled", "no_show")


async def record_freed(s: AsyncSession, row: Appointment, snap: AppointmentSnapshot) -> bool:
    """The visit stops holding its slot (cancelled, a no-show reported before the start, or
    moved to another time): record the freed slot for the waiting list, in this sync's
    transaction. `row` still holds the last synced state."""
    if snap.stage in FREEING and row.stage != snap.stage:
        offer = await waitlist.record_freed_slot(
            s,
            appointment_id=row.id,
            clinic_id=row.clinic_id,
            doctor_id=row.doctor_id,
            starts_at=snap.starts_at,
            duration_minutes=snap.duration_minutes,
            version=snap.version,
            reason=snap.stage,
        )
        return offer is not None
    if snap.version > row.version and row.starts_at != snap.starts_at and row.stage not in FREEING:
        # Rescheduled (core.booking.move may have recorded it already, under the same key).
        offer = await waitlist.record_freed_slot(
            s,
            appointment_id=row.id,
            clinic_id=row.clinic_id,
            doctor_id=row.doctor_id,
            starts_at=row.starts_at,
            duration_minutes=row.duration_minutes,
            version=snap.version - 1,
            reason="rescheduled",
            still_held=(snap.starts_at, snap.ends_at),
        )
        return offer is not None
    return False


def row_columns(snap: AppointmentSnapshot) -> dict[str, Any]:
    """The row's columns from a snapshot; a field the snapshot does not carry (None: an older
    journey's input or snapshot) keeps the row's value."""
    columns = snap.columns()
    for name in ("source", "journey_revision"):
        if columns.get(name) is None:
            columns.pop(name, None)
    return columns


_ROW = Appointment.__table__.c  # type: ignore[attr-defined]


async def write_beside(s: AsyncSession, snap: AppointmentSnapshot, was: int) -> bool:
    """Write the journey's row as `snap` has it, in the caller's transaction, only if the row
    still shows journey revision `was` (one conditional UPDATE: atomic on SQLite and
    PostgreSQL alike). True if it did. For a change that moves nothing a full sync would act
    on (stage, version and time as the row has them: an ask's count and history entry), so
    the row's columns and its confirmation facts are all there is to write."""
    values = row_columns(snap)
    values.pop("id")
    values.update(confirmation_facts((h.at, h.event) for h in snap.history).columns(), updated_at=datetime.now(UTC))
    # The row as the journey last wrote it, with the stage, version and time this change keeps
    # (a reschedule's new time, written by the API beside the journey, is not undone here).
    same = (
        _ROW.journey_revision == was,
        _ROW.stage == snap.stage,
        _ROW.version == snap.version,
        _ROW.starts_at == snap.starts_at,
    )
    q = update(Appointment.__table__).where(_ROW.id == snap.appointment_id, *same).values(**values)  # type: ignore[attr-defined]
    return (await s.exec(q)).rowcount == 1  # type: ignore[call-overload]


class AppointmentActivities(AppointmentActivityStubs):
    def __init__(self, deps: Deps, messaging: MessagingActivities | None = None) -> None:
        self.deps = deps
        self.messaging = messaging or MessagingActivities(deps)

    @activity.defn(name="load_appointment_context")
    @heartbeats
    async def load_appointment_context(self, req: ContextRequest) -> AppointmentContext:
        async with self.deps.sessions() as s:
            clinic = await s.get(Clinic, req.clinic_id)
            doctor = await s.get(Doctor, req.doctor_id)
        if clinic is None or doctor is None:
            raise ApplicationError(
                "clinic or doctor of the appointment no longer exists", type="NotFound", non_retryable=True
            )
        st = self.deps.settings
        return AppointmentContext(
            clinic_name=clinic.name,
            clinic_address=clinic.address,
            clinic_phone=clinic.phone,
            review_url=clinic.review_url,
            doctor_name=doctor.full_name,
            feedback_url=page_url(st.public_base_url, st.link_secret, req.appointment_id, "feedback"),
            link=page_url(st.public_base_url, st.link_secret, req.appointment_id),
        )

    @activity.defn(name="send_appointment_message")
    async def send_appointment_message(self, req: AppointmentSend) -> SendResult:
        """`send_patient_message`, with the journey's row as it will be once the message is out
        written in the commit that records the send (one transaction instead of two)."""

        async def write(s: AsyncSession) -> bool:
            return await write_beside(s, req.row, req.row_was)

        return await self.messaging.send(req.message, on_sent=write)

    @activity.defn(name="sync_appointment")
    @heartbeats
    async def sync_appointment(self, snap: AppointmentSnapshot) -> None:
        columns = row_columns(snap)
        async with self.deps.sessions() as s:
            row = await s.get(Appointment, snap.appointment_id)
            entered = row is None or row.stage != snap.stage  # a new row counts its first stage too
            if row is None:  # e.g. a treatment plan started the journey as a child
                row = Appointment(**columns)
                freed = False
            else:
                freed = await record_freed(s, row, snap)
                for name, value in columns.items():
                    setattr(row, name, value)
            apply_confirmation_facts(row, ((h.at, h.event) for h in snap.history))
            row.updated_at = datetime.now(UTC)
            s.add(row)
            await expire_moot_questions(s, snap)
            await s.commit()
            if freed or row.stage in FREEING or snap.version > 1:
                # The freed slot's offer (recorded here or by core.booking.move) starts now.
                for offer in await waitlist.pending_offers(s, freed_by=row.id):
                    await waitlist.start_offer(s, activity.client(), activity.info().task_queue, offer)
        if entered:
            metrics.appointment_stage_entered(snap.stage)
        log.info("appointment synced", appointment_id=snap.appointment_id, stage=snap.stage, version=snap.version)


__all__ = ["AppointmentActivities"]
