"""The waiting list's data layer on SQLite and PostgreSQL: who a freed slot is offered to
(first come first served; the doctor or the specialty; opted-out patients and guardians, other
doctors, removed and expired entries left out), and a freed slot recorded once however many
writers record it at the same time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import booking, waitlist
from core.db import make_engine, session_factory
from models.appointment import Appointment
from models.core import Clinic, Doctor, Patient
from models.waitlist import ACTIVE, BOOKED, REMOVED, SlotOffer, WaitlistEntry, matching_entries
from tests.test_data_layer import db_url  # noqa: F401 - the two-database fixture

__all__ = ["db_url"]
TZ = "Europe/Kyiv"


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:  # noqa: F811
    engine = make_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


async def _world(s: AsyncSession) -> dict[str, Any]:
    clinic = Clinic(name="Podil", address="Kyiv", phone="+380441234567", timezone=TZ)
    s.add(clinic)
    await s.flush()
    koval = Doctor(clinic_id=clinic.id, full_name="Dr Koval", specialty="therapy")
    bondar = Doctor(clinic_id=clinic.id, full_name="Dr Bondar", specialty="therapy")
    other = Doctor(clinic_id=clinic.id, full_name="Dr Lysenko", specialty="implantology")
    s.add_all([koval, bondar, other])
    names = ["first", "second", "any_therapist", "other_doctor", "opted_out", "child", "guardian", "removed", "expired"]
    people = {n: Patient(full_name=f"Patient {n}", clinic_id=clinic.id) for n in names}
    people["opted_out"].opted_out = True
    people["guardian"].opted_out = True
    s.add_all(people.values())
    await s.flush()
    people["child"].guardian_id = people["guardian"].id
    starts = datetime.now(UTC) + timedelta(days=2)
    until = (starts + timedelta(days=3)).date()
    t0 = datetime.now(UTC) - timedelta(hours=1)

    def wish(n: str, minute: int, **kw: Any) -> WaitlistEntry:
        e = WaitlistEntry(
            clinic_id=clinic.id,
            patient_id=people[n].id,
            service="Check-up",
            until=kw.pop("until", until),
            created_at=t0 + timedelta(minutes=minute),
            **{"doctor_id": koval.id, **kw},
        )
        s.add(e)
        return e

    wish("second", 2)
    wish("first", 1)
    wish("any_therapist", 3, doctor_id=None, specialty="therapy")
    wish("other_doctor", 0, doctor_id=other.id)
    wish("opted_out", 0)
    wish("child", 0)
    wish("removed", 0, state=REMOVED)
    wish("expired", 0, until=date.today() - timedelta(days=1))
    offer = SlotOffer(
        freed_key=f"{uuid.uuid4().hex}:v1",
        clinic_id=clinic.id,
        doctor_id=koval.id,
        starts_at=starts,
        duration_minutes=30,
        freed_by="x",
        reason="cancelled",
        workflow_id="slot-offer-x",
    )
    s.add(offer)
    await s.commit()
    return {
        "clinic": clinic,
        "koval": koval,
        "bondar": bondar,
        "other": other,
        "people": people,
        "offer": offer,
        "starts": starts,
        "until": until,
    }


async def test_who_a_freed_slot_is_offered_to(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s:
        w = await _world(s)
        names = {p.id: n for n, p in w["people"].items()}
        found = await matching_entries(s, w["offer"], TZ, [], [], 10)
        assert [names[e.patient_id] for e in found] == ["first", "second", "any_therapist"]
        first_two = await matching_entries(s, w["offer"], TZ, [], [], 2)
        assert [names[e.patient_id] for e in first_two] == ["first", "second"]
        rest = await matching_entries(s, w["offer"], TZ, [e.id for e in first_two], [], 2)
        assert [names[e.patient_id] for e in rest] == ["any_therapist"]
        skip = await matching_entries(s, w["offer"], TZ, [], [w["people"]["first"].id], 10)
        assert [names[e.patient_id] for e in skip] == ["second", "any_therapist"]


async def test_a_freed_slot_is_recorded_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s:
        w = await _world(s)
    clinic, koval, starts = w["clinic"], w["koval"], w["starts"]

    freed_by = uuid.uuid4().hex

    async def record() -> str | None:
        async with sessions() as s:
            offer = await waitlist.record_freed_slot(
                s,
                appointment_id=freed_by,
                clinic_id=clinic.id,
                doctor_id=koval.id,
                starts_at=starts,
                duration_minutes=30,
                version=3,
                reason="rescheduled",
            )
            await s.commit()
            return offer.id if offer else None

    ids = await asyncio.gather(*[record() for _ in range(4)])
    async with sessions() as s:
        rows = (await s.exec(select(SlotOffer).where(SlotOffer.freed_key == f"{freed_by}:v3"))).all()
    assert len(rows) == 1 and set(ids) == {rows[0].id}, ids
    assert rows[0].workflow_id == f"slot-offer-{rows[0].id}" and not rows[0].journey_started

    # Too close to the slot (stop_before defaults to 2 h) or still held by the moved visit: none.
    async with sessions() as s:
        soon = await waitlist.record_freed_slot(
            s,
            appointment_id="b" * 32,
            clinic_id=clinic.id,
            doctor_id=koval.id,
            starts_at=datetime.now(UTC) + timedelta(minutes=90),
            duration_minutes=30,
            version=1,
            reason="cancelled",
        )
        held = await waitlist.record_freed_slot(
            s,
            appointment_id="c" * 32,
            clinic_id=clinic.id,
            doctor_id=koval.id,
            starts_at=starts,
            duration_minutes=30,
            version=1,
            reason="rescheduled",
            still_held=(starts + timedelta(minutes=15), starts + timedelta(minutes=45)),
        )
    assert soon is None and held is None


async def _state(s: AsyncSession, patient_id: str) -> list[tuple[str, str | None]]:
    q = select(WaitlistEntry).where(WaitlistEntry.patient_id == patient_id)
    return [(e.state, e.booked_appointment_id) for e in (await s.exec(q)).all()]


async def test_a_booking_that_fulfils_the_wish_takes_the_patient_off_the_list(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """core.booking.reserve (the desk, the MIS import and slot offers all book through it):
    a visit with the wished doctor, or a doctor of the wished specialty, at the clinic on or
    before `until` marks the entry booked with the visit; other visits leave it listed."""
    async with sessions() as s:
        w = await _world(s)
    clinic, people, starts = w["clinic"], w["people"], w["starts"]
    after_until = datetime.combine(w["until"] + timedelta(days=2), datetime.min.time(), UTC) + timedelta(hours=10)

    async def book(patient: str, doctor: Doctor, at: datetime) -> str:
        async with sessions() as s:
            appt = await booking.reserve(
                s,
                clinic=clinic,
                doctor_id=doctor.id,
                patient_id=people[patient].id,
                starts_at=at,
                duration_minutes=30,
                service="Check-up",
                source="import",
            )
            await s.commit()
            return appt.id

    # Not what they wait for: another specialty's doctor; the right doctor but after `until`.
    await book("first", w["other"], starts + timedelta(hours=3))
    await book("first", w["koval"], after_until)
    async with sessions() as s:
        assert await _state(s, people["first"].id) == [(ACTIVE, None)]
    # The wished doctor before `until`; any therapist for a specialty wish.
    first = await book("first", w["koval"], starts + timedelta(hours=5))
    therapist = await book("any_therapist", w["bondar"], starts + timedelta(hours=5))
    async with sessions() as s:
        assert await _state(s, people["first"].id) == [(BOOKED, first)]
        assert await _state(s, people["any_therapist"].id) == [(BOOKED, therapist)]
        row = await s.get(Appointment, first)
        assert row is not None and row.source == "import"
        # No longer offered the freed slot; the others still are.
        names = {p.id: n for n, p in people.items()}
        found = await matching_entries(s, w["offer"], TZ, [], [], 10)
        assert [names[e.patient_id] for e in found] == ["second"]


async def test_a_patient_with_a_visit_at_that_time_is_not_offered_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        w = await _world(s)
        people, starts = w["people"], w["starts"]

        def visit(patient: str, minutes: int, stage: str = "booked") -> Appointment:
            at = starts + timedelta(minutes=minutes)
            return Appointment(
                clinic_id=w["clinic"].id,
                doctor_id=w["other"].id,
                patient_id=people[patient].id,
                service="Implant",
                starts_at=at,
                ends_at=at + timedelta(minutes=30),
                duration_minutes=30,
                stage=stage,
                workflow_id=f"appointment-{uuid.uuid4().hex}",
            )

        s.add_all(
            [
                visit("first", 20),  # overlaps the slot's last 10 minutes: busy
                visit("second", 30),  # starts as the slot ends: free
                visit("any_therapist", 0, stage="cancelled"),  # a cancelled visit holds nothing
            ]
        )
        await s.commit()
        names = {p.id: n for n, p in people.items()}
        found = await matching_entries(s, w["offer"], TZ, [], [], 10)
        assert [names[e.patient_id] for e in found] == ["second", "any_therapist"]
