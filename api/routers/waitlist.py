"""The waiting list (issue 12): patients who want an earlier visit. When a slot frees (a cancel,
a reschedule away, a no-show reported before the visit), a slot-offer journey offers it to the
matching entries here (workflows/slot_offer.py); the first "yes" books it.

    POST   /v1/waitlist            add a patient (201)
    GET    /v1/waitlist            the list, oldest first (filters: clinic, patient, doctor, state)
    GET    /v1/waitlist/{id}       one entry
    DELETE /v1/waitlist/{id}       take a patient off the list (204)
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import col, select

from api import policy
from api.deps import MAX_OFFSET, SessionDep
from api.errors import check_choice, invalid_field
from core import booking
from models.core import Clinic, Doctor, StaffUser, utcnow
from models.waitlist import (
    ACTIVE,
    ENTRY_STATES,
    EXPIRED,
    REMOVED,
    WaitlistEntry,
    clinic_todays,
    expired_filter,
    local_today,
    shown_state,
)

router = APIRouter(prefix="/v1/waitlist", tags=["waiting list"])

Reader = Annotated[StaffUser, policy.may("waitlist", "read")]
Manager = Annotated[StaffUser, policy.may("waitlist", "manage")]

MAX_AHEAD = timedelta(days=366)  # a wish for more than a year ahead is a booking, not a list
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = Field(description="clinic-local HH:MM")
    end: str = Field(description="clinic-local HH:MM, after start")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("a time of day as HH:MM, e.g. 09:00")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("end must be after start (a window within one day)")
        return self


class WaitlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: str = Field(min_length=1, max_length=32)
    clinic_id: str = Field(min_length=1, max_length=32)
    doctor_id: str | None = Field(default=None, min_length=1, max_length=32)
    specialty: str | None = Field(default=None, min_length=1, max_length=100)
    service: str | None = Field(default=None, min_length=1, max_length=200)
    service_code: str | None = Field(default=None, min_length=1, max_length=64)
    duration_minutes: int | None = Field(default=None, ge=5, le=12 * 60)
    days: list[int] = Field(
        default_factory=list, max_length=7, description="ISO weekdays 1=Monday..7=Sunday; empty: any day"
    )
    windows: list[Window] = Field(default_factory=list, max_length=6, description="empty: any time")
    until: date = Field(description="the last day (clinic-local) the patient wants an earlier visit")
    note: str | None = Field(default=None, max_length=500)

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in v):
            raise ValueError("days are ISO weekdays: 1 (Monday) to 7 (Sunday)")
        return sorted(set(v))

    @model_validator(mode="after")
    def _who_and_what(self) -> WaitlistIn:
        if not self.doctor_id and not self.specialty:
            raise ValueError("name the doctor (doctor_id) or any doctor of a specialty (specialty)")
        if self.doctor_id and self.specialty:
            raise ValueError("give doctor_id or specialty, not both")
        if not self.service and not self.service_code:
            raise ValueError("name the service: service_code (from the clinic's catalogue) or service")
        return self


class WaitlistOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    clinic_id: str
    patient_id: str
    doctor_id: str | None
    specialty: str | None
    service: str
    service_code: str | None
    duration_minutes: int | None
    days: list[int]
    windows: list[dict[str, str]]
    until: date
    note: str | None
    state: str = Field(
        description="active, booked (booked_appointment_id: the visit, however it was booked), removed, "
        "or expired (active but past `until` in the clinic's time; never offered a slot)"
    )
    booked_appointment_id: str | None
    created_at: datetime


def _out(e: WaitlistEntry, today: date) -> WaitlistOut:
    """`today` is the entry's clinic's local date: an active entry past `until` reads expired."""
    out = WaitlistOut.model_validate(e, from_attributes=True)
    out.state = shown_state(e, today)
    return out


async def _today(session: SessionDep, clinic_id: str) -> date:
    return (await clinic_todays(session, [clinic_id])).get(clinic_id) or utcnow().date()


@router.post("", response_model=WaitlistOut, status_code=status.HTTP_201_CREATED)
async def add(body: WaitlistIn, session: SessionDep, user: Manager) -> WaitlistOut:
    clinic = await session.get(Clinic, body.clinic_id)
    if clinic is None or not policy.in_scope(user, clinic.id):
        raise invalid_field("clinic_id", f"clinic_id {body.clinic_id!r} does not exist")
    if await policy.patient_visible(session, user, body.patient_id) is None:
        raise invalid_field("patient_id", f"patient_id {body.patient_id!r} does not exist")
    if body.doctor_id:
        doctor = await session.get(Doctor, body.doctor_id)
        if doctor is None or not policy.in_scope(user, doctor.clinic_id):
            raise invalid_field("doctor_id", f"doctor_id {body.doctor_id!r} does not exist")
        if doctor.clinic_id != clinic.id:
            raise invalid_field("doctor_id", "this doctor does not work at this clinic")
    else:
        q = select(Doctor.id).where(Doctor.clinic_id == clinic.id, Doctor.specialty == body.specialty)
        if (await session.exec(q.limit(1))).first() is None:
            raise invalid_field("specialty", f"no doctor of this clinic has the specialty {body.specialty!r}")
    today = local_today(clinic.timezone)
    if body.until < today:
        raise invalid_field("until", "until is in the past")
    if body.until > today + MAX_AHEAD:
        raise invalid_field("until", "until is more than a year ahead")
    try:
        service, service_code = await booking.resolve_service(session, clinic, body.service, body.service_code)
    except booking.InvalidBooking as e:
        raise invalid_field(e.field, e.message) from e
    same = select(WaitlistEntry).where(
        WaitlistEntry.patient_id == body.patient_id,
        WaitlistEntry.clinic_id == clinic.id,
        WaitlistEntry.state == ACTIVE,
        col(WaitlistEntry.until) >= today,  # an expired wish does not stand in the way of a new one
        WaitlistEntry.doctor_id == body.doctor_id if body.doctor_id else col(WaitlistEntry.doctor_id).is_(None),
        WaitlistEntry.specialty == body.specialty if body.specialty else col(WaitlistEntry.specialty).is_(None),
    )
    if (dup := (await session.exec(same)).first()) is not None:
        raise HTTPException(
            409,
            detail={"message": "the patient is already on this list; change it by removing that entry", "id": dup.id},
        )
    entry = WaitlistEntry(
        clinic_id=clinic.id,
        patient_id=body.patient_id,
        doctor_id=body.doctor_id,
        specialty=body.specialty,
        service=service,
        service_code=service_code,
        duration_minutes=body.duration_minutes,
        days=body.days,
        windows=[w.model_dump() for w in body.windows],
        until=body.until,
        note=body.note,
        created_by=user.id,
    )
    session.add(entry)
    await session.commit()
    return _out(entry, today)


@router.get("", response_model=list[WaitlistOut])
async def list_entries(
    session: SessionDep,
    user: Reader,
    clinic_id: str | None = None,
    patient_id: str | None = None,
    doctor_id: str | None = None,
    state: Annotated[str, Query(description=f"one of {', '.join(ENTRY_STATES)}")] = ACTIVE,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[WaitlistOut]:
    check_choice("state", state, ENTRY_STATES)
    todays = await clinic_todays(session)
    q = select(WaitlistEntry)
    if state in (ACTIVE, EXPIRED):  # computed at read: active and past `until` is expired
        q = q.where(expired_filter(todays, expired=state == EXPIRED))
    else:
        q = q.where(WaitlistEntry.state == state)
    if (cond := policy.clinic_filter(user, WaitlistEntry.clinic_id)) is not None:
        q = q.where(cond)
    if clinic_id:
        q = q.where(WaitlistEntry.clinic_id == clinic_id)
    if patient_id:
        q = q.where(WaitlistEntry.patient_id == patient_id)
    if doctor_id:
        q = q.where(WaitlistEntry.doctor_id == doctor_id)
    q = q.order_by(col(WaitlistEntry.created_at), col(WaitlistEntry.id)).offset(offset).limit(limit)
    fallback = utcnow().date()
    return [_out(e, todays.get(e.clinic_id, fallback)) for e in (await session.exec(q)).all()]


async def _entry(session: SessionDep, user: StaffUser, entry_id: str) -> WaitlistEntry:
    entry = await session.get(WaitlistEntry, entry_id)
    if entry is None or not policy.in_scope(user, entry.clinic_id):
        raise policy.not_found("waitlist entry", entry_id)
    return entry


@router.get("/{entry_id}", response_model=WaitlistOut)
async def get_entry(entry_id: str, session: SessionDep, user: Reader) -> WaitlistOut:
    entry = await _entry(session, user, entry_id)
    return _out(entry, await _today(session, entry.clinic_id))


@router.delete("/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove(entry_id: str, session: SessionDep, user: Manager) -> Response:
    """Off the list (kept, state `removed`, for the record); removing twice is the same, and
    an expired entry is removed too."""
    entry = await _entry(session, user, entry_id)
    if entry.state == ACTIVE:
        entry.state, entry.updated_at = REMOVED, utcnow()
        session.add(entry)
        await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
