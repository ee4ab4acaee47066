"""The MIS import over HTTP (SPEC §6): a clinic's column mapping, uploading a file (202: it
runs as a workflow), reading an import's progress and per-row errors, and picking up the
clinic's drop folder now instead of at the scheduled time."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile, status
from pydantic import BaseModel, Field, field_validator
from sqlmodel import col, select
from temporalio.service import RPCError, RPCStatusCode

from api import policy
from api.deps import MAX_OFFSET, SessionDep, SettingsDep, TemporalDep
from api.errors import invalid_field
from core import imports
from core.mis_files import FileError, read_table, resolve_columns
from models.core import Clinic, StaffUser, utcnow
from models.imports import ALL_FIELDS, DEFAULT_HEADERS, ImportKind, ImportMapping, ImportRun, drop_schedule_id

router = APIRouter(prefix="/v1", tags=["imports"])

Importer = Annotated[StaffUser, policy.may("imports", "upload")]
Manager = Annotated[StaffUser, policy.may("imports", "mapping")]
READ_CHUNK = 1 << 20


# ---------------------------------------------------------------- schemas
class MappingIn(BaseModel):
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="our field -> the header in the clinic's file; fields not named keep the default headers",
    )
    authoritative_days: bool = Field(
        False, description="a visits file lists every visit of each day in it: absent visits are cancelled"
    )
    daily_at: str = Field("06:00", description="clinic-local time the drop folder is picked up (HH:MM)")
    default_duration_minutes: int = Field(30, ge=5, le=720)
    default_service: str = Field("Приём", min_length=1, max_length=200)

    @field_validator("columns")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        for k, header in v.items():
            if k not in ALL_FIELDS:
                raise ValueError(f"unknown field {k!r}; one of: {', '.join(ALL_FIELDS)}")
            if not header.strip() or len(header) > 200:
                raise ValueError(f"the header for {k!r} must be 1-200 characters")
        return {k: h.strip() for k, h in v.items()}

    @field_validator("daily_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError("daily_at must be HH:MM, e.g. 06:30")
        return v


class MappingOut(MappingIn):
    clinic_id: str
    clinic_code: str | None
    drop_folder: str | None
    schedule_id: str | None
    headers: dict[str, list[str]] = Field(description="the headers each field is read from, in order of preference")


class ImportAccepted(BaseModel):
    id: str
    state: str
    workflow_id: str
    status_url: str


class RowErrorOut(BaseModel):
    row: int
    column: str | None
    reason: str


class ImportOut(BaseModel):
    id: str
    clinic_id: str
    kind: str
    state: str
    source: str
    file_name: str
    workflow_id: str
    total_rows: int | None
    processed_rows: int
    progress: float = Field(description="0..1")
    counts: dict[str, int]
    error: str | None = Field(description="why the whole file could not be read")
    errors: list[RowErrorOut]
    created_at: datetime
    finished_at: datetime | None


def _out(st: imports.Status) -> ImportOut:
    return ImportOut(
        id=st.id,
        clinic_id=st.clinic_id,
        kind=st.kind,
        state=st.state,
        source=st.source,
        file_name=st.file_name,
        workflow_id=st.workflow_id,
        total_rows=st.total_rows,
        processed_rows=st.processed_rows,
        progress=st.progress,
        counts=st.counts,
        error=st.error,
        errors=[RowErrorOut(row=e.row, column=e.column, reason=e.reason) for e in st.errors],
        created_at=st.created_at,
        finished_at=st.finished_at,
    )


# ---------------------------------------------------------------- helpers
async def _clinic(session: SessionDep, clinic_id: str, user: StaffUser, field: str | None = None) -> Clinic:
    clinic = await session.get(Clinic, clinic_id)
    # Another branch's clinic answers as a missing one (policy: never 403).
    if clinic is None or not policy.in_scope(user, clinic.id):
        if field:
            raise invalid_field(field, f"clinic_id {clinic_id!r} does not exist")
        raise policy.not_found("clinic", clinic_id)
    return clinic


def _mapping_out(clinic: Clinic, m: ImportMapping, settings: Any) -> MappingOut:
    cols = {k: str(v) for k, v in m.columns.items()}
    return MappingOut(
        clinic_id=clinic.id,
        clinic_code=clinic.code,
        columns=cols,
        authoritative_days=m.authoritative_days,
        daily_at=m.daily_at,
        default_duration_minutes=m.default_duration_minutes,
        default_service=m.default_service,
        drop_folder=str(settings.import_dir / clinic.code) if clinic.code else None,
        schedule_id=drop_schedule_id(clinic.id) if clinic.code else None,
        headers={f: ([cols[f]] if f in cols else DEFAULT_HEADERS[f]) for f in ALL_FIELDS},
    )


# ---------------------------------------------------------------- mapping
@router.get("/clinics/{clinic_id}/import-mapping", response_model=MappingOut)
async def get_mapping(clinic_id: str, session: SessionDep, settings: SettingsDep, user: Importer) -> MappingOut:
    clinic = await _clinic(session, clinic_id, user)
    return _mapping_out(clinic, await imports.mapping_of(session, clinic.id), settings)


@router.put("/clinics/{clinic_id}/import-mapping", response_model=MappingOut)
async def put_mapping(
    clinic_id: str, body: MappingIn, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, user: Manager
) -> MappingOut:
    clinic = await _clinic(session, clinic_id, user)
    m = await session.get(ImportMapping, clinic.id) or ImportMapping(clinic_id=clinic.id)
    m.columns = dict(body.columns)
    m.authoritative_days = body.authoritative_days
    m.daily_at = body.daily_at
    m.default_duration_minutes = body.default_duration_minutes
    m.default_service = body.default_service
    m.updated_at = utcnow()
    session.add(m)
    await session.commit()
    if clinic.code:  # the daily pickup follows the mapping's time, in the clinic's timezone
        await imports.ensure_drop_schedule(temporal, settings.temporal_task_queue, clinic, m)
    return _mapping_out(clinic, m, settings)


# ---------------------------------------------------------------- imports
@router.post("/imports", response_model=ImportAccepted, status_code=status.HTTP_202_ACCEPTED)
async def upload(
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    user: Importer,
    file: Annotated[UploadFile, File(description="CSV (UTF-8 or Windows-1251, ';' or ',') or XLSX")],
    clinic_id: Annotated[str, Form(min_length=1, max_length=32)],
    kind: Annotated[ImportKind, Form(description="visits, completed or patients")],
) -> ImportAccepted:
    clinic = await _clinic(session, clinic_id, user, field="clinic_id")
    limit = settings.max_upload_bytes
    content = b""
    while chunk := await file.read(READ_CHUNK):
        content += chunk
        if len(content) > limit:
            raise HTTPException(413, f"file is larger than the {limit} byte limit")
    mapping = await imports.mapping_of(session, clinic.id)
    try:  # the file as a whole must be readable now; its rows are checked by the import
        table = await asyncio.to_thread(read_table, content)
        resolve_columns(table.headers, mapping.columns, kind)
    except FileError as e:
        raise invalid_field("file", str(e)) from None
    run, _ = await imports.register(
        session,
        clinic=clinic,
        kind=kind,
        file_name=file.filename or "upload",
        content=content,
        source="api",
        created_by=user.id,
    )
    await imports.start(temporal, settings.temporal_task_queue, run)
    return ImportAccepted(id=run.id, state=run.state, workflow_id=run.workflow_id, status_url=f"/v1/imports/{run.id}")


@router.get("/imports/{import_id}", response_model=ImportOut)
async def get_import(import_id: str, session: SessionDep, user: Importer) -> ImportOut:
    run = await session.get(ImportRun, import_id)
    if run is None:
        raise HTTPException(404, f"import {import_id} not found")
    await _clinic(session, run.clinic_id, user)
    return _out(await imports.status(session, run))


@router.get("/imports", response_model=list[ImportOut])
async def list_imports(
    session: SessionDep,
    user: Importer,
    clinic_id: str,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[ImportOut]:
    await _clinic(session, clinic_id, user)
    q = (
        select(ImportRun)
        .where(ImportRun.clinic_id == clinic_id)
        .order_by(col(ImportRun.created_at).desc())
        .offset(offset)
        .limit(limit)
    )
    return [_out(await imports.status(session, r, with_errors=False)) for r in (await session.exec(q)).all()]


class ScanIn(BaseModel):
    clinic_id: str = Field(min_length=1, max_length=32)


@router.post("/imports/scan", status_code=status.HTTP_202_ACCEPTED)
async def scan_now(
    body: ScanIn, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, user: Importer
) -> dict[str, str]:
    """Pick up the clinic's drop folder now (triggers its daily Schedule)."""
    clinic = await _clinic(session, body.clinic_id, user, field="clinic_id")
    if not clinic.code:
        raise invalid_field("clinic_id", "the clinic has no code: set one (PATCH /v1/clinics/{id}) to name its folder")
    sid = await imports.ensure_drop_schedule(
        temporal, settings.temporal_task_queue, clinic, await imports.mapping_of(session, clinic.id)
    )
    try:
        await temporal.get_schedule_handle(sid).trigger()
    except RPCError as e:  # pragma: no cover - the schedule was just ensured
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HTTPException(409, "the clinic's drop-folder schedule is missing; retry") from e
    assert settings.import_dir is not None
    return {"schedule_id": sid, "drop_folder": str(settings.import_dir / clinic.code)}
