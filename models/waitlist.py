"""The waiting list (issue 12): patients who want an earlier visit, and the slots freed for them.

`WaitlistEntry` is one patient's wish: a clinic, a doctor (or any doctor of a specialty), a
service, acceptable weekdays and time windows (clinic-local), until a date. `SlotOffer` is one
freed slot (a cancelled, moved-away or missed-in-advance visit) being offered to matching
entries by its slot-offer journey (workflows/slot_offer.py); it is recorded in the same
transaction as whatever freed the slot, keyed by the freeing visit and its version, so a
slot is offered once however many times the change is synced, retried or repaired.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, and_, false
from sqlmodel import Field, SQLModel, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.appointment import clinic_zone
from models.appointment import Appointment
from models.core import TZ, Clinic, Doctor, Patient, new_id, utcnow

ACTIVE, BOOKED, REMOVED, EXPIRED = "active", "booked", "removed", "expired"
# Stored states. `expired` is never stored: an active entry whose `until` (clinic-local) has
# passed reads as expired (`shown_state`, `expired_filter`) and is never matched to a slot.
STORED_STATES = (ACTIVE, BOOKED, REMOVED)
ENTRY_STATES = (ACTIVE, BOOKED, REMOVED, EXPIRED)
# A visit in these stages does not hold its time (a patient with one there is free then).
NOT_HOLDING = ("cancelled", "no_show")
# A slot offer: open while its journey offers it; then booked (a waitlisted patient took it),
# taken (someone else booked the slot meanwhile), too_close (its stop time came) or
# exhausted (nobody on the list took it: the front desk has a task).
OFFER_STATES = ("open", "booked", "taken", "too_close", "exhausted")


class WaitlistEntry(SQLModel, table=True):
    __tablename__ = "waitlist_entry"
    __table_args__ = (Index("ix_waitlist_entry_clinic_state", "clinic_id", "state", "created_at"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    doctor_id: str | None = Field(default=None, foreign_key="doctor.id", max_length=32)
    specialty: str | None = Field(default=None, max_length=100)  # any doctor of it (no doctor_id)
    service: str = Field(max_length=200)
    service_code: str | None = Field(default=None, max_length=64)
    duration_minutes: int | None = None  # the visit needs this long (None: whatever was freed)
    days: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # ISO 1=Mon..7; []=any
    windows: list[dict[str, str]] = Field(  # [{"start": "09:00", "end": "13:00"}] local; [] = any time
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    until: date  # the wish ends after this day (clinic-local)
    note: str | None = Field(default=None, max_length=500)
    state: str = Field(default=ACTIVE, max_length=16)
    booked_appointment_id: str | None = Field(default=None, max_length=32)
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)


class SlotOffer(SQLModel, table=True):
    __tablename__ = "slot_offer"
    __table_args__ = (UniqueConstraint("freed_key", name="uq_slot_offer_freed_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    freed_key: str = Field(max_length=64)  # <appointment id>:v<version>
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    doctor_id: str = Field(foreign_key="doctor.id", max_length=32)
    starts_at: datetime = TZ(nullable=False)
    duration_minutes: int
    freed_by: str = Field(max_length=32)  # the appointment that freed it
    reason: str = Field(max_length=16)  # cancelled / rescheduled / no_show
    state: str = Field(default="open", max_length=16)
    workflow_id: str = Field(max_length=255)
    journey_started: bool = Field(default=False, index=True)
    offered: int = Field(default=0)  # patients asked so far
    booked_appointment_id: str | None = Field(default=None, max_length=32)
    waitlist_entry_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    closed_at: datetime | None = TZ(nullable=True)


def local_today(timezone: str) -> date:
    return utcnow().astimezone(clinic_zone(timezone)).date()


def shown_state(entry: WaitlistEntry, today: date) -> str:
    """The state the API shows: an active entry past its `until` (clinic-local `today`) is expired."""
    return EXPIRED if entry.state == ACTIVE and entry.until < today else entry.state


async def clinic_todays(s: AsyncSession, clinic_ids: Iterable[str] | None = None) -> dict[str, date]:
    """Each clinic's local date now (what `until` is compared with)."""
    q = select(Clinic.id, Clinic.timezone)
    if clinic_ids is not None:
        q = q.where(col(Clinic.id).in_(list(clinic_ids)))
    return {cid: local_today(tz) for cid, tz in (await s.exec(q)).all()}


def expired_filter(todays: dict[str, date], expired: bool) -> Any:
    """SQL for "active and past its until" (`expired=True`) or "active and still wanted",
    each clinic judged by its own local date (clinics share at most a few dates)."""
    by_day: dict[date, list[str]] = {}
    for cid, d in todays.items():
        by_day.setdefault(d, []).append(cid)
    past = or_(
        false(),
        *(and_(col(WaitlistEntry.clinic_id).in_(ids), col(WaitlistEntry.until) < d) for d, ids in by_day.items()),
    )
    if expired:
        return and_(col(WaitlistEntry.state) == ACTIVE, past)
    # Active rows of clinics not in `todays` (none in practice) read as still wanted.
    return and_(col(WaitlistEntry.state) == ACTIVE, ~past)


async def busy_patients(
    s: AsyncSession, patient_ids: Iterable[str], starts_at: datetime, ends_at: datetime, exclude: str | None = None
) -> set[str]:
    """Which of these patients already have a visit (any doctor, any branch) overlapping
    [starts_at, ends_at): they are not offered, nor booked into, that time."""
    ids = list(patient_ids)
    if not ids:
        return set()
    q = select(Appointment.patient_id).where(
        col(Appointment.patient_id).in_(ids),
        col(Appointment.stage).not_in(NOT_HOLDING),
        col(Appointment.starts_at) < ends_at,
        col(Appointment.ends_at) > starts_at,
    )
    if exclude is not None:
        q = q.where(Appointment.id != exclude)
    return set((await s.exec(q)).all())


def on_list(patient_id: Any, clinic_id: Any) -> Any:
    """Does the patient have an active entry at the clinic (values or bound parameters)? A
    booking that finds none has nothing to `take_off_list` (an EXISTS a booking folds into its
    one check under the doctor's lock)."""
    return (
        select(WaitlistEntry.id)
        .where(
            col(WaitlistEntry.patient_id) == patient_id,
            col(WaitlistEntry.clinic_id) == clinic_id,
            col(WaitlistEntry.state) == ACTIVE,
        )
        .exists()
    )


async def take_off_list(s: AsyncSession, appt: Appointment, timezone: str) -> list[WaitlistEntry]:
    """The patient's active entries this visit satisfies (same clinic; the visit's doctor, or
    the doctor's specialty for an entry without one; on or before `until`) become `booked`
    with the visit's id, in the caller's transaction: whoever booked it (the desk, an MIS
    import, a slot offer), the patient leaves the list and is offered no more slots."""
    doctor = await s.get(Doctor, appt.doctor_id)
    who = [col(WaitlistEntry.doctor_id) == appt.doctor_id]
    if doctor is not None and doctor.specialty:
        who.append(col(WaitlistEntry.doctor_id).is_(None) & (col(WaitlistEntry.specialty) == doctor.specialty))
    day = appt.starts_at.astimezone(clinic_zone(timezone)).date()
    q = select(WaitlistEntry).where(
        WaitlistEntry.clinic_id == appt.clinic_id,
        WaitlistEntry.patient_id == appt.patient_id,
        WaitlistEntry.state == ACTIVE,
        col(WaitlistEntry.until) >= day,
        or_(*who),
    )
    found = list((await s.exec(q)).all())
    for e in found:
        e.state, e.booked_appointment_id, e.updated_at = BOOKED, appt.id, utcnow()
        s.add(e)
    return found


def _hhmm(v: str) -> time:
    h, m = v.split(":")
    return time(int(h), int(m))


def fits(entry: WaitlistEntry, starts_at: datetime, duration_minutes: int, timezone: str) -> bool:
    """Does a slot starting at `starts_at` (aware) for `duration_minutes` suit this entry?
    Weekday, time window (the whole visit inside one window), until-date, the visit's length."""
    local = starts_at.astimezone(clinic_zone(timezone))
    if local.date() > entry.until:
        return False
    if entry.days and local.isoweekday() not in entry.days:
        return False
    need = entry.duration_minutes or duration_minutes
    if need > duration_minutes:
        return False
    if entry.windows:
        start = local.time()
        end_minutes = local.hour * 60 + local.minute + need
        ok = False
        for w in entry.windows:
            ws, we = _hhmm(w["start"]), _hhmm(w["end"])
            if ws <= start and end_minutes <= we.hour * 60 + we.minute:
                ok = True
                break
        if not ok:
            return False
    return True


async def matching_entries(
    s: AsyncSession,
    offer: SlotOffer,
    timezone: str,
    exclude_entries: list[str],
    exclude_patients: list[str],
    limit: int,
) -> list[WaitlistEntry]:
    """Active entries this slot suits, first come first served: the slot's doctor, or its
    specialty when the entry names no doctor; opted-out patients (and children whose guardian
    opted out), patients with another visit at that time and the patient who freed the slot
    are left out."""
    doctor = await s.get(Doctor, offer.doctor_id)
    who = [col(WaitlistEntry.doctor_id) == offer.doctor_id]
    if doctor is not None and doctor.specialty:
        who.append((col(WaitlistEntry.doctor_id).is_(None)) & (col(WaitlistEntry.specialty) == doctor.specialty))
    q = (
        select(WaitlistEntry)
        .where(
            WaitlistEntry.clinic_id == offer.clinic_id,
            WaitlistEntry.state == ACTIVE,
            col(WaitlistEntry.until) >= offer.starts_at.astimezone(clinic_zone(timezone)).date(),
            or_(*who),
        )
        .order_by(col(WaitlistEntry.created_at), col(WaitlistEntry.id))
    )
    out: list[WaitlistEntry] = []
    skip_entries, skip_patients = set(exclude_entries), set(exclude_patients)
    for e in (await s.exec(q)).all():
        if e.id in skip_entries or e.patient_id in skip_patients:
            continue
        if not fits(e, offer.starts_at, offer.duration_minutes, timezone):
            continue
        need = timedelta(minutes=e.duration_minutes or offer.duration_minutes)
        if await busy_patients(s, [e.patient_id], offer.starts_at, offer.starts_at + need):
            continue  # already has a visit then (another doctor, another branch)
        p = await s.get(Patient, e.patient_id)
        if p is None or p.opted_out:
            continue
        if p.guardian_id and (g := await s.get(Patient, p.guardian_id)) is not None and g.opted_out:
            continue
        skip_patients.add(e.patient_id)  # one offer per patient, whatever their entries
        out.append(e)
        if len(out) >= limit:
            break
    return out


async def any_waiting(s: AsyncSession, clinic_id: str, on: date) -> bool:
    """Is anyone on this clinic's list for a day like this (a cheap pre-check before an offer)?"""
    q = select(WaitlistEntry.id).where(
        WaitlistEntry.clinic_id == clinic_id, WaitlistEntry.state == ACTIVE, col(WaitlistEntry.until) >= on
    )
    return (await s.exec(q.limit(1))).first() is not None
