"""A clinic's service catalogue: code, name (and aliases: other languages, the MIS's
spelling), specialty, default duration and the care memos before / after. The built-in
catalogue (core/texts/memos.py) applies until the clinic adds or changes an entry with the
same code; `active: false` hides one.

    POST  /v1/clinics/{id}/services            201 (409: the clinic has that code already)
    GET   /v1/clinics/{id}/services            the effective catalogue (`source`: clinic | default)
    GET   /v1/clinics/{id}/services/{code}
    PATCH /v1/clinics/{id}/services/{code}     changes a clinic entry, or copies a built-in one
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, field_validator
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import policy
from api.deps import SessionDep
from api.errors import invalid_field
from api.routers.templates import clinic_for
from core.texts.catalogue import Entry, catalogue, from_row
from core.texts.defaults import MEMO_PREFIX
from core.texts.memos import DEFAULT_MEMOS
from models.core import StaffUser, utcnow
from models.texts import MessageTemplate, Service

router = APIRouter(prefix="/v1/clinics/{clinic_id}/services", tags=["patient texts"])

Manager = Annotated[StaffUser, policy.may("directory", "manage")]
Anyone = Annotated[StaffUser, policy.may("directory", "read")]
_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-.]{0,63}$")


def _code(v: str | None) -> str | None:
    if v is not None and not _CODE.match(v):
        raise ValueError("use lower-case letters, digits, _ - . (e.g. wisdom_extraction)")
    return v


class ServiceIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = Field(default_factory=list, max_length=30)
    specialty: str | None = Field(default=None, max_length=100)
    duration_minutes: int = Field(default=30, ge=5, le=12 * 60)
    memo_before: str | None = Field(default=None, max_length=64, description="memo code: template memo.<code>")
    memo_after: str | None = Field(default=None, max_length=64)
    active: bool = True

    _c = field_validator("code", "memo_before", "memo_after")(_code)


class ServicePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    aliases: list[str] | None = Field(default=None, max_length=30)
    specialty: str | None = Field(default=None, max_length=100)
    duration_minutes: int | None = Field(default=None, ge=5, le=12 * 60)
    memo_before: str | None = Field(default=None, max_length=64)
    memo_after: str | None = Field(default=None, max_length=64)
    active: bool | None = None

    _c = field_validator("memo_before", "memo_after")(_code)


class ServiceOut(BaseModel):
    code: str
    name: str
    aliases: list[str]
    specialty: str | None
    duration_minutes: int
    memo_before: str | None
    memo_after: str | None
    active: bool
    source: str


def _out(e: Entry) -> ServiceOut:
    return ServiceOut(
        code=e.code,
        name=e.name,
        aliases=e.aliases,
        specialty=e.specialty,
        duration_minutes=e.duration_minutes,
        memo_before=e.memo_before,
        memo_after=e.memo_after,
        active=e.active,
        source=e.source,
    )


async def _memo_exists(session: AsyncSession, clinic_id: str, code: str | None, field: str) -> None:
    if code is None or code in DEFAULT_MEMOS:
        return
    q = select(MessageTemplate.id).where(
        MessageTemplate.clinic_id == clinic_id, MessageTemplate.kind == MEMO_PREFIX + code
    )
    if (await session.exec(q)).first() is None:
        raise invalid_field(
            field, f"no memo {code!r}: a built-in one, or PUT /v1/clinics/{{id}}/templates/memo.{code}/<language> first"
        )


async def _row(session: AsyncSession, clinic_id: str, code: str) -> Service | None:
    q = select(Service).where(Service.clinic_id == clinic_id, Service.code == code)
    return (await session.exec(q)).first()


@router.post("", response_model=ServiceOut, status_code=status.HTTP_201_CREATED)
async def create_service(clinic_id: str, body: ServiceIn, session: SessionDep, user: Manager) -> ServiceOut:
    await clinic_for(session, user, clinic_id)
    if await _row(session, clinic_id, body.code) is not None:
        raise HTTPException(409, f"the clinic already has service {body.code!r}: PATCH it")
    await _memo_exists(session, clinic_id, body.memo_before, "memo_before")
    await _memo_exists(session, clinic_id, body.memo_after, "memo_after")
    row = Service(clinic_id=clinic_id, **body.model_dump())
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return _out(from_row(row))


@router.get("", response_model=list[ServiceOut])
async def list_services(clinic_id: str, session: SessionDep, user: Anyone) -> list[ServiceOut]:
    clinic = await clinic_for(session, user, clinic_id)
    return [_out(e) for e in await catalogue(session, clinic_id, clinic.language)]


@router.get("/{code}", response_model=ServiceOut)
async def get_service(clinic_id: str, code: str, session: SessionDep, user: Anyone) -> ServiceOut:
    clinic = await clinic_for(session, user, clinic_id)
    for e in await catalogue(session, clinic_id, clinic.language):
        if e.code == code:
            return _out(e)
    raise HTTPException(404, f"service {code!r} not found")


@router.patch("/{code}", response_model=ServiceOut)
async def update_service(
    clinic_id: str, code: str, body: ServicePatch, session: SessionDep, user: Manager
) -> ServiceOut:
    clinic = await clinic_for(session, user, clinic_id)
    changes = body.model_dump(exclude_unset=True)
    for k in ("name", "aliases", "duration_minutes", "active"):
        if k in changes and changes[k] is None:
            raise invalid_field(k, f"{k} cannot be null")
    if "memo_before" in changes:
        await _memo_exists(session, clinic_id, changes["memo_before"], "memo_before")
    if "memo_after" in changes:
        await _memo_exists(session, clinic_id, changes["memo_after"], "memo_after")
    row = await _row(session, clinic_id, code)
    if row is None:
        base = next((e for e in await catalogue(session, clinic_id, clinic.language) if e.code == code), None)
        if base is None:
            raise HTTPException(404, f"service {code!r} not found")
        row = Service(
            clinic_id=clinic_id,
            code=code,
            name=base.name,
            aliases=base.aliases,
            specialty=base.specialty,
            duration_minutes=base.duration_minutes,
            memo_before=base.memo_before,
            memo_after=base.memo_after,
        )
    for k, v in changes.items():
        setattr(row, k, v)
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return _out(from_row(row))
