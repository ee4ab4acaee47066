"""Test data straight into the database: clinics, doctors, patients, appointments."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.appointment import appointment_workflow_id
from models.appointment import Appointment
from models.core import Channel, Clinic, Doctor, Patient


def random_phone() -> str:
    return f"+38067{random.randint(1000000, 9999999)}"


def random_chat_id() -> str:
    return str(random.randint(10**8, 10**10))


class People:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._clinic: str | None = None
        self._doctor: str | None = None

    async def _add(self, obj):  # type: ignore[no-untyped-def]
        async with self.sessions() as s:
            s.add(obj)
            await s.commit()
            await s.refresh(obj)
        return obj

    async def clinic(self) -> str:
        if self._clinic is None:
            c = await self._add(
                Clinic(name="Smile", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv", policy={})
            )
            d = await self._add(Doctor(clinic_id=c.id, full_name="Dr Test", specialty="therapy"))
            self._clinic, self._doctor = c.id, d.id
        return self._clinic

    async def patient(
        self,
        channel: Channel = Channel.whatsapp,
        phone: str | None = "random",
        chat_id: str | None = None,
        guardian_id: str | None = None,
        opted_out: bool = False,
    ) -> Patient:
        return await self._add(
            Patient(
                full_name="Olena Testenko",
                phone=random_phone() if phone == "random" else phone,
                telegram_chat_id=chat_id,
                preferred_channel=channel,
                guardian_id=guardian_id,
                clinic_id=await self.clinic(),
                opted_out=opted_out,
            )
        )

    async def appointment(self, patient_id: str, in_hours: float = 24, stage: str = "booked") -> Appointment:
        clinic = await self.clinic()
        aid = uuid.uuid4().hex
        starts = datetime.now(UTC) + timedelta(hours=in_hours)
        return await self._add(
            Appointment(
                id=aid,
                clinic_id=clinic,
                doctor_id=self._doctor,
                patient_id=patient_id,
                service="Hygiene",
                starts_at=starts,
                ends_at=starts + timedelta(minutes=30),
                duration_minutes=30,
                stage=stage,
                workflow_id=appointment_workflow_id(aid),
            )
        )

    async def get(self, model, id_: str):  # type: ignore[no-untyped-def]
        async with self.sessions() as s:
            return await s.get(model, id_)
