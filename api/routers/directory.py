"""Clinics, doctors, patients: the directory every journey refers to."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import policy
from api.deps import MAX_OFFSET, SessionDep
from api.errors import field_error, invalid_field
from models.core import (
    DEFAULT_LEAD_SOURCES,
    Clinic,
    ClinicCreate,
    ClinicPublic,
    ClinicUpdate,
    Doctor,
    DoctorCreate,
    DoctorPublic,
    Patient,
    PatientCreate,
    PatientPublic,
    PolicyIn,
    StaffUser,
)

router = APIRouter(prefix="/v1", tags=["directory"])

Manager = Annotated[StaffUser, policy.may("directory", "manage")]
Anyone = Annotated[StaffUser, policy.may("directory", "read")]
PatientReader = Annotated[StaffUser, policy.may("patients", "read")]
PatientWriter = Annotated[StaffUser, policy.may("patients", "create")]


# ---------------------------------------------------------------- clinics
@router.post("/clinics", response_model=ClinicPublic, status_code=status.HTTP_201_CREATED)
async def create_clinic(body: ClinicCreate, session: SessionDep, user: Manager) -> Clinic:
    if policy.clinic_scope(user) is not None:  # a branch director runs their branch, not the network
        raise HTTPException(403, "only network staff (no clinic) may open a clinic")
    clinic = Clinic(**body.model_dump(exclude={"policy"}), policy=body.policy.to_json())
    session.add(clinic)
    await _commit_clinic(session, clinic.code)
    return clinic


async def _commit_clinic(session: SessionDep, code: str | None) -> None:
    """The only unique clinic field is its drop-folder code: a clash is the client's to fix."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(409, f"clinic code {code!r} is already used by another clinic") from None


@router.get("/clinics", response_model=list[ClinicPublic])
async def list_clinics(session: SessionDep, user: Anyone) -> list[Clinic]:
    q = select(Clinic).order_by(Clinic.name)
    if (cond := policy.clinic_filter(user, Clinic.id)) is not None:
        q = q.where(cond)
    return list((await session.exec(q)).all())


@router.get("/clinics/{clinic_id}", response_model=ClinicPublic)
async def get_clinic(clinic_id: str, session: SessionDep, user: Anyone) -> Clinic:
    policy.ensure_in_scope(user, clinic_id, "clinic", clinic_id)
    return await _get(session, Clinic, clinic_id, "clinic")


@router.patch("/clinics/{clinic_id}", response_model=ClinicPublic)
async def update_clinic(clinic_id: str, body: ClinicUpdate, session: SessionDep, user: Manager) -> Clinic:
    policy.ensure_in_scope(user, clinic_id, "clinic", clinic_id)
    clinic = await _get(session, Clinic, clinic_id, "clinic")
    changes = body.model_dump(exclude_unset=True)
    if "policy" in changes:
        try:
            merged = PolicyIn.model_validate({**clinic.policy, **(changes.pop("policy") or {})})
        except ValidationError as e:
            raise field_error(e, prefix=("body", "policy")) from None
        clinic.policy = merged.to_json()
    for k, v in changes.items():
        if v is None and k in ("name", "address", "phone", "timezone", "lead_sources", "language", "whatsapp_template"):
            raise HTTPException(422, f"{k} cannot be null")
        setattr(clinic, k, v)
    session.add(clinic)
    await _commit_clinic(session, clinic.code)
    await session.refresh(clinic)
    return clinic


# ---------------------------------------------------------------- doctors
@router.post("/doctors", response_model=DoctorPublic, status_code=status.HTTP_201_CREATED)
async def create_doctor(body: DoctorCreate, session: SessionDep, user: Manager) -> Doctor:
    await _must_exist(session, Clinic, body.clinic_id, "clinic_id", user)
    doctor = Doctor(**body.model_dump())
    session.add(doctor)
    await session.commit()
    return doctor


@router.get("/doctors", response_model=list[DoctorPublic])
async def list_doctors(session: SessionDep, user: Anyone, clinic_id: str | None = Query(None)) -> list[Doctor]:
    q = select(Doctor).order_by(Doctor.full_name)
    if (cond := policy.clinic_filter(user, Doctor.clinic_id)) is not None:
        q = q.where(cond)
    if clinic_id:
        q = q.where(Doctor.clinic_id == clinic_id)
    return list((await session.exec(q)).all())


@router.get("/doctors/{doctor_id}", response_model=DoctorPublic)
async def get_doctor(doctor_id: str, session: SessionDep, user: Anyone) -> Doctor:
    doctor = await _get(session, Doctor, doctor_id, "doctor")
    policy.ensure_in_scope(user, doctor.clinic_id, "doctor", doctor_id)
    return doctor


# ---------------------------------------------------------------- patients
@router.post("/patients", response_model=PatientPublic, status_code=status.HTTP_201_CREATED)
async def create_patient(body: PatientCreate, session: SessionDep, user: PatientWriter) -> Patient:
    if body.guardian_id:
        guardian = await policy.patient_visible(session, user, body.guardian_id)
        if guardian is None:
            raise invalid_field("guardian_id", f"guardian_id {body.guardian_id!r} does not exist")
        if guardian.guardian_id:
            raise invalid_field("guardian_id", "the guardian must be an adult record without a guardian")
    if body.clinic_id:
        await _must_exist(session, Clinic, body.clinic_id, "clinic_id", user)
    else:
        body.clinic_id = policy.clinic_scope(user)  # a branch registers its own patients
    if body.preferred_channel == "telegram" and not body.telegram_chat_id and not body.guardian_id:
        raise invalid_field("telegram_chat_id", "telegram_chat_id is required when preferred_channel is telegram")
    if not body.phone and not body.guardian_id and not body.telegram_chat_id:
        raise invalid_field("phone", "a patient needs a phone, a telegram_chat_id or a guardian_id")
    if body.source is not None:
        clinic = await session.get(Clinic, body.clinic_id) if body.clinic_id else None
        allowed = clinic.lead_sources if clinic else list(DEFAULT_LEAD_SOURCES)
        if body.source not in allowed:
            where = "this clinic's lead sources" if clinic else "the lead sources"
            raise invalid_field("source", f"source {body.source!r} is not one of {where}: {', '.join(allowed)}")
    patient = Patient(**body.model_dump())
    session.add(patient)
    await session.commit()
    return patient


@router.get("/patients", response_model=list[PatientPublic])
async def list_patients(
    session: SessionDep,
    user: PatientReader,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[Patient]:
    q = select(Patient)
    if (cond := policy.patient_filter(user)) is not None:
        q = q.where(cond)
    q = q.order_by(col(Patient.created_at)).offset(offset).limit(limit)
    return list((await session.exec(q)).all())


@router.get("/patients/{patient_id}", response_model=PatientPublic)
async def get_patient(patient_id: str, session: SessionDep, user: PatientReader) -> Patient:
    patient = await policy.patient_visible(session, user, patient_id)
    if patient is None:
        raise policy.not_found("patient", patient_id)
    return patient


# ---------------------------------------------------------------- helpers
_M = TypeVar("_M", bound=SQLModel)


async def _get(session: AsyncSession, model: type[_M], id_: str, what: str) -> _M:
    obj = await session.get(model, id_)
    if obj is None:
        raise HTTPException(404, f"{what} {id_} not found")
    return obj


async def _must_exist(session: AsyncSession, model: type[_M], id_: str, field: str, user: StaffUser) -> _M:
    """A reference in the body that points nowhere (or to another branch's clinic, which must
    look the same) is the caller's input error: 422 on the field."""
    obj = await session.get(model, id_)
    if obj is None or (model is Clinic and not policy.in_scope(user, id_)):
        raise invalid_field(field, f"{field} {id_!r} does not exist")
    return obj
