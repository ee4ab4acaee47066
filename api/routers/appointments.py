"""Appointments: book (starts the journey), read live state, and move it along.

Bookings write the row first and start the workflow second; if the start fails the row is
removed again, so nothing half-written stays behind. Every change after booking is a
workflow *update* whose validator rejects a request that does not fit the stage (409)
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import bindparam, literal
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    QueryRejectCondition,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api import policy
from api.deps import MAX_OFFSET, MaybeTemporalDep, SessionDep, SettingsDep, TemporalDep
from api.errors import check_choice, invalid_field
from contracts.appointment import SOURCES, STAGES, AppointmentOutcome, AppointmentSnapshot, StaffAction
from core import booking
from core.settings import Settings
from core.texts import catalogue
from models.appointment import Appointment
from models.core import Clinic, Doctor, Patient, StaffUser
from workflows.appointment import AppointmentJourney

router = APIRouter(prefix="/v1/appointments", tags=["appointments"])
QUERY_TIMEOUT = timedelta(seconds=5)  # a live answer, or the DB's copy when no worker answers

Desk = Annotated[StaffUser, policy.may("appointments", "book")]
Reader = Annotated[StaffUser, policy.may("appointments", "read")]
Arrival = Annotated[StaffUser, policy.may("appointments", "check-in")]
Doctoring = Annotated[StaffUser, policy.may("appointments", "finish")]


# ---------------------------------------------------------------- schemas
def _aware(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("starts_at needs a UTC offset, e.g. 2026-05-04T10:30:00+03:00")
    try:
        return v.astimezone(UTC)
    except OverflowError:
        raise ValueError("starts_at is out of range") from None


class AppointmentCreate(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32)
    clinic_id: str = Field(min_length=1, max_length=32)
    doctor_id: str = Field(min_length=1, max_length=32)
    starts_at: datetime
    duration_minutes: int = Field(ge=5, le=12 * 60)
    # The clinic catalogue's code, or free text matched to the catalogue by code or name
    # (any language, any case); at least one of the two.
    service: str | None = Field(default=None, min_length=1, max_length=200)
    service_code: str | None = Field(default=None, min_length=1, max_length=64)
    plan_id: str | None = Field(default=None, max_length=32)

    _tz = field_validator("starts_at")(_aware)

    @model_validator(mode="after")
    def _service_named(self) -> AppointmentCreate:
        if not self.service and not self.service_code:
            raise ValueError("name the service: service_code (from the clinic's catalogue) or service")
        return self


class RescheduleIn(BaseModel):
    starts_at: datetime
    duration_minutes: int | None = Field(default=None, ge=5, le=12 * 60)

    _tz = field_validator("starts_at")(_aware)


class CancelIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class NoteIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    event: str
    stage: str


class AppointmentOut(BaseModel):
    """Read with `model_validate(x, from_attributes=True)` from the journey's
    `AppointmentSnapshot` (live) or from the `appointment` row (its synced copy) alike."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    workflow_id: str
    stage: str
    fhir_status: str
    clinic_id: str
    doctor_id: str
    patient_id: str
    service: str
    service_code: str | None = None
    plan_id: str | None
    source: str | None = Field(
        None, description=f"where the booking came from: {', '.join(SOURCES)}; null: booked before it was recorded"
    )
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    version: int
    asks_sent: int
    voice_calls: int
    nps: int | None
    history: list[HistoryOut]
    live: bool = Field(False, description="true: answered by the running journey; false: from the DB")


def _out(source: Appointment | AppointmentSnapshot) -> AppointmentOut:
    out = AppointmentOut.model_validate(source, from_attributes=True)
    out.live = isinstance(source, AppointmentSnapshot)
    return out


# ---------------------------------------------------------------- booking
@dataclass
class _Targets:
    """What a booking names, as the user may see it: None for a missing clinic (or one outside
    the user's branch) or doctor; `patient` False when the patient is missing or not visible;
    `own_services`: whether the clinic has catalogue entries of its own; `key`: the booking
    that already has this Idempotency-Key, if any."""

    clinic: Clinic | None
    doctor: Doctor | None
    patient: bool
    own_services: bool
    key: str | None


@cache
def _targets_statement(scoped: bool, keyed: bool) -> Any:
    """One round trip for the Idempotency-Key's booking, the clinic row, the doctor row, the
    patient's visibility and the clinic's catalogue (built once; parameters bound at
    execution). Always one row: a missing clinic or doctor reads as NULL."""
    patient = select(Patient.id).where(col(Patient.id) == bindparam("patient_id"))
    if scoped:
        patient = patient.where(policy.patient_condition(bindparam("scope")))
    cols: list[Any] = [
        Clinic,
        Doctor,
        patient.scalar_subquery().label("patient"),
        catalogue.has_own(bindparam("clinic_id")).label("own_services"),
    ]
    if keyed:
        key = select(Appointment.id).where(col(Appointment.idempotency_key) == bindparam("key"))
        cols.append(key.scalar_subquery().label("key"))
    one_row = sa_select(literal(1).label("one")).subquery("one_row")
    return (
        sa_select(*cols)
        .select_from(one_row)
        .outerjoin(Clinic, col(Clinic.id) == bindparam("clinic_id"))
        .outerjoin(Doctor, col(Doctor.id) == bindparam("doctor_id"))
    )


async def _targets(session: AsyncSession, user: StaffUser, body: AppointmentCreate, key: str | None) -> _Targets:
    scope = policy.clinic_scope(user)
    params = {"clinic_id": body.clinic_id, "doctor_id": body.doctor_id, "patient_id": body.patient_id}
    if scope is not None:
        params["scope"] = scope
    if key:
        params["key"] = key
    row = (await session.exec(_targets_statement(scope is not None, bool(key)), params=params)).one()
    clinic = row[0] if policy.in_scope(user, body.clinic_id) else None
    return _Targets(clinic, row[1], row[2] is not None, bool(row[3]), row[4] if key else None)


@router.post("", response_model=AppointmentOut, status_code=status.HTTP_201_CREATED)
async def book(
    body: AppointmentCreate,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    user: Desk,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> AppointmentOut:
    found = await _targets(session, user, body, idempotency_key)
    if found.key is not None and (existing := await session.get(Appointment, found.key)) is not None:
        if not policy.in_scope(user, existing.clinic_id):  # another branch's key: as if a different booking
            raise HTTPException(409, "this Idempotency-Key was already used for a different booking")
        return await _replay(existing, body, temporal, settings, session)

    clinic, doctor = found.clinic, found.doctor
    if clinic is None:
        raise invalid_field("clinic_id", f"clinic_id {body.clinic_id!r} does not exist")
    if doctor is None:
        raise invalid_field("doctor_id", f"doctor_id {body.doctor_id!r} does not exist")
    if doctor.clinic_id != clinic.id:
        raise invalid_field("doctor_id", "this doctor does not work at this clinic")
    if not found.patient:
        raise invalid_field("patient_id", f"patient_id {body.patient_id!r} does not exist")
    try:
        appt = await booking.book(
            session,
            temporal,
            settings.temporal_task_queue,
            clinic=clinic,
            doctor_id=doctor.id,
            patient_id=body.patient_id,
            starts_at=body.starts_at,
            duration_minutes=body.duration_minutes,
            service=body.service,
            service_code=body.service_code,
            plan_id=body.plan_id,
            idempotency_key=idempotency_key,
            source="desk",
            catalogue_entries=None if found.own_services else catalogue.defaults(clinic.language),
            marks=getattr(request.app.state, "started_marks", None),
        )
    except booking.KeyTaken as e:  # a concurrent retry of this key booked it first
        await session.commit()  # ends the lock (nothing was written); keeps `existing` loaded
        return await _replay(e.existing, body, temporal, settings, session)
    except IntegrityError:  # the same Idempotency-Key raced us (for another doctor): its booking
        await session.rollback()
        existing = await booking.by_key(session, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return await _replay(existing, body, temporal, settings, session)
    except booking.BookingError as e:
        raise _http(e) from e
    return _out(appt)


def _http(e: booking.BookingError) -> HTTPException:
    if isinstance(e, booking.SlotTaken):
        return HTTPException(409, detail=e.detail())
    assert isinstance(e, booking.InvalidBooking)
    return invalid_field(e.field, e.message)


async def _replay(
    existing: Appointment, body: AppointmentCreate, temporal: Client, settings: Settings, session: SessionDep
) -> AppointmentOut:
    """The same Idempotency-Key again: the same appointment, and no second journey."""
    same = (
        existing.patient_id == body.patient_id
        and existing.doctor_id == body.doctor_id
        and existing.starts_at == body.starts_at
    )
    if not same and existing.version == 1:
        raise HTTPException(
            409,
            detail={
                "message": "this Idempotency-Key was already used for a different booking",
                "appointment_id": existing.id,
            },
        )
    clinic = await session.get(Clinic, existing.clinic_id)
    assert clinic is not None
    # Make sure the journey runs (a first attempt may have died between row and start).
    await booking.start_journey(temporal, settings.temporal_task_queue, existing, clinic)
    await booking.mark_started(session, existing)
    return _out(existing)


# ---------------------------------------------------------------- reading
@router.get("", response_model=list[AppointmentOut])
async def list_appointments(
    session: SessionDep,
    user: Reader,
    clinic_id: str | None = None,
    date_: Annotated[date | None, Query(alias="date", description="local date of the clinic")] = None,
    stage: str | None = None,
    doctor_id: str | None = None,
    patient_id: str | None = None,
    source: Annotated[str | None, Query(description=f"one of {', '.join(SOURCES)}")] = None,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[AppointmentOut]:
    q = select(Appointment)
    if (cond := policy.clinic_filter(user, Appointment.clinic_id)) is not None:
        q = q.where(cond)
    check_choice("stage", stage, STAGES)
    check_choice("source", source, SOURCES)
    if stage is not None:
        q = q.where(Appointment.stage == stage)
    if source is not None:
        q = q.where(Appointment.source == source)
    if clinic_id:
        q = q.where(Appointment.clinic_id == clinic_id)
    if doctor_id:
        q = q.where(Appointment.doctor_id == doctor_id)
    if patient_id:
        q = q.where(Appointment.patient_id == patient_id)
    if date_ is not None:
        tz = ZoneInfo("UTC")
        if clinic_id and (clinic := await session.get(Clinic, clinic_id)) is not None:
            tz = ZoneInfo(clinic.timezone)
        day = datetime(date_.year, date_.month, date_.day, tzinfo=tz)
        try:
            since, until = day.astimezone(UTC), (day + timedelta(days=1)).astimezone(UTC)
        except OverflowError:  # the first or last day of the calendar
            raise HTTPException(
                422, detail=[{"loc": ["query", "date"], "msg": "date is out of range", "type": "value_error"}]
            ) from None
        q = q.where(col(Appointment.starts_at) >= since, col(Appointment.starts_at) < until)
    q = q.order_by(col(Appointment.starts_at)).offset(offset).limit(limit)
    return [_out(a) for a in (await session.exec(q)).all()]


@router.get("/{appointment_id}", response_model=AppointmentOut)
async def get_appointment(
    appointment_id: str, session: SessionDep, temporal: MaybeTemporalDep, user: Reader
) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    if temporal is None:  # Temporal not reachable since this API started: the DB's copy
        return _out(appt)
    try:
        view = await _handle(temporal, appt).query(
            AppointmentJourney.view,
            reject_condition=QueryRejectCondition.NOT_OPEN,
            rpc_timeout=QUERY_TIMEOUT,
        )
    except WorkflowQueryRejectedError:
        return _out(appt)  # the journey has ended: the row holds its final state
    except RPCError as e:
        # Not found (not started yet / retention passed) or no worker answering in time:
        # the row is the last state the journey wrote (`live: false` says so).
        if e.status not in (
            RPCStatusCode.NOT_FOUND,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.CANCELLED,
            RPCStatusCode.UNAVAILABLE,
        ):
            raise
        return _out(appt)
    out = _out(view)
    out.source = out.source or appt.source  # a journey started before it carried `source`
    return out


# ---------------------------------------------------------------- changes (updates)
@router.post("/{appointment_id}/reschedule", response_model=AppointmentOut)
async def reschedule(
    appointment_id: str, body: RescheduleIn, session: SessionDep, temporal: TemporalDep, user: Desk
) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    _must_be_open(appt, "reschedule")
    try:
        view = await booking.move(session, temporal, appt, body.starts_at, body.duration_minutes)
    except booking.BookingError as e:
        raise _http(e) from e
    return _out(view)


@router.post("/{appointment_id}/cancel", response_model=AppointmentOut)
async def cancel(
    appointment_id: str, body: CancelIn, session: SessionDep, temporal: TemporalDep, user: Desk
) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    _must_be_open(appt, "cancel")
    return _out(await booking.cancel(temporal, appt, body.reason))


@router.post("/{appointment_id}/confirm", response_model=AppointmentOut)
async def confirm(
    appointment_id: str, session: SessionDep, temporal: TemporalDep, user: Desk, body: NoteIn | None = None
) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    _must_be_open(appt, "confirm")
    return await _update(
        temporal, appt, AppointmentJourney.confirm, StaffAction(by=user.id, note=body.note if body else None)
    )


@router.post("/{appointment_id}/check-in", response_model=AppointmentOut)
async def check_in(appointment_id: str, session: SessionDep, temporal: TemporalDep, user: Arrival) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    _must_be_open(appt, "check-in")
    return await _update(temporal, appt, AppointmentJourney.check_in, StaffAction(by=user.id))


@router.post("/{appointment_id}/finish", response_model=AppointmentOut)
async def finish(appointment_id: str, session: SessionDep, temporal: TemporalDep, user: Doctoring) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    _must_be_open(appt, "finish")
    return await _update(temporal, appt, AppointmentJourney.finish, StaffAction(by=user.id))


@router.post("/{appointment_id}/no-show", response_model=AppointmentOut)
async def no_show(appointment_id: str, session: SessionDep, temporal: TemporalDep, user: Arrival) -> AppointmentOut:
    appt = await _row(session, appointment_id, user)
    _must_be_open(appt, "mark as no-show")
    return await _update(temporal, appt, AppointmentJourney.no_show, StaffAction(by=user.id))


# ---------------------------------------------------------------- helpers
async def _row(session: SessionDep, appointment_id: str, user: StaffUser) -> Appointment:
    appt = await session.get(Appointment, appointment_id)
    if appt is None or not policy.in_scope(user, appt.clinic_id):
        raise policy.not_found("appointment", appointment_id)
    return appt


def _must_be_open(appt: Appointment, action: str) -> None:
    # Ended journeys cannot take updates; say why in the same shape as the validators.
    if appt.stage in ("cancelled", "no_show", "finished"):
        raise HTTPException(
            409, detail={"message": f"cannot {action} an appointment in stage {appt.stage!r}", "stage": appt.stage}
        )


def _handle(temporal: Client, appt: Appointment) -> WorkflowHandle[AppointmentJourney, AppointmentOutcome]:
    return temporal.get_workflow_handle_for(AppointmentJourney.run, appt.workflow_id)


StaffUpdate = UpdateMethodMultiParam[[AppointmentJourney, StaffAction], AppointmentSnapshot]


async def _update(temporal: Client, appt: Appointment, update: StaffUpdate, arg: StaffAction) -> AppointmentOut:
    """A staff action as the journey's typed update (its validator may refuse it: 409)."""
    view = await _handle(temporal, appt).execute_update(update, arg)
    return _out(view)
