"""The appointment table: the journey's record in the database. The workflow is the live
truth while it runs; the row mirrors it (stage, counters, history) so lists and finished
journeys are served from the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.core import TZ, Doctor, new_id, utcnow
from models.journeys import OPEN_STAGES


class Appointment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_appointment_idempotency_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    doctor_id: str = Field(foreign_key="doctor.id", index=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    service: str = Field(max_length=200)
    starts_at: datetime = TZ(nullable=False, index=True)
    ends_at: datetime = TZ(nullable=False)
    duration_minutes: int
    stage: str = Field(default="booked", index=True, max_length=32)
    version: int = Field(default=1)
    workflow_id: str = Field(max_length=255)
    idempotency_key: str | None = Field(default=None, max_length=255)
    plan_id: str | None = Field(default=None, index=True, max_length=32)
    asks_sent: int = Field(default=0)
    voice_calls: int = Field(default=0)
    nps: int | None = None
    cancel_reason: str | None = Field(default=None, max_length=500)
    history: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)


async def doctor_clash(
    session: AsyncSession, doctor_id: str, starts_at: datetime, ends_at: datetime, exclude: str | None = None
) -> Appointment | None:
    """An open visit of the same doctor that intersects [starts_at, ends_at), if any.
    (Timestamps are stored in UTC on every database, so this compares in SQL.)

    The doctor's row is locked first (SELECT ... FOR UPDATE) until the caller commits, so two
    bookings for one doctor are checked one after the other on PostgreSQL and cannot both
    take the slot. SQLite, the single-machine default, has no row locks."""
    await session.exec(select(Doctor.id).where(Doctor.id == doctor_id).with_for_update())
    q = select(Appointment).where(
        Appointment.doctor_id == doctor_id,
        col(Appointment.stage).in_(OPEN_STAGES),
        col(Appointment.starts_at) < ends_at,
        col(Appointment.ends_at) > starts_at,
    )
    if exclude:
        q = q.where(Appointment.id != exclude)
    return (await session.exec(q)).first()
