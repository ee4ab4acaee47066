"""The daily MIS import: per-clinic column mapping, one row per import run (the uploaded or
dropped file and its state), one row per file row (what was applied, or why not), and the
link from a clinic's MIS patient id to our patient.

Per-row outcomes are the import's ledger: a row is written `done` in the same transaction
as its effect, so a resumed import (worker killed) never applies a row twice, and every
count is read from here."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from contracts.mis_import import (  # noqa: F401 - the import's contract, re-exported
    DROP_FOLDER_WORKFLOW,
    IMPORT_WORKFLOW,
    BatchRef,
    DropResult,
    DropScan,
    ImportInput,
    ImportPlan,
    drop_schedule_id,
    import_workflow_id,
)
from models.core import TZ, EnumField, new_id, utcnow


class ImportKind(enum.StrEnum):
    visits = "visits"  # tomorrow's (or any future) visits: journeys created / moved / cancelled
    completed = "completed"  # visits that happened, with their outcome
    patients = "patients"  # the patient base


class ImportState(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"  # the file itself could not be read (no row was applied)


# Canonical fields and the headers the clinic's MIS uses for them by default (Russian
# exports of 1C:Helix, iDent, ...). Matching ignores case, spaces and ё/е.
DEFAULT_HEADERS: dict[str, list[str]] = {
    "visit_id": ["ID визита", "№ визита", "Номер визита"],
    "patient_id": ["№ карты/ID пациента", "№ карты", "ID пациента", "Номер карты"],
    "full_name": ["ФИО", "ФИО пациента", "Пациент"],
    "phone": ["Телефон", "Тел.", "Мобильный телефон"],
    "birth_date": ["Дата рождения"],
    "guardian": ["Представитель", "ФИО представителя"],
    "guardian_id": ["ID представителя"],
    "date": ["Дата", "Дата визита", "Дата приема", "Дата приёма"],
    "time": ["Время", "Время визита", "Время приема", "Время приёма"],
    "duration": ["Длительность", "Длительность, мин"],
    "doctor": ["Врач", "Доктор"],
    "service": ["Услуга", "Услуги"],
    "status": ["Статус", "Результат", "Явка"],
    "source": ["Источник", "Источник обращения"],
    "last_visit": ["Последний визит", "Дата последнего визита"],
    "loyalty_points": ["Баллы", "Бонусы", "Бонусные баллы"],
    "email": ["E-mail", "Email", "Эл. почта"],
}

# Which fields each kind reads, and which of them a row must have.
KIND_FIELDS: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.visits: (
        "visit_id",
        "patient_id",
        "full_name",
        "phone",
        "birth_date",
        "guardian",
        "date",
        "time",
        "duration",
        "doctor",
        "service",
        "source",
    ),
    ImportKind.completed: (
        "visit_id",
        "patient_id",
        "full_name",
        "phone",
        "birth_date",
        "guardian",
        "date",
        "time",
        "duration",
        "doctor",
        "service",
        "status",
    ),
    ImportKind.patients: (
        "patient_id",
        "full_name",
        "phone",
        "birth_date",
        "guardian",
        "guardian_id",
        "source",
        "last_visit",
        "loyalty_points",
        "email",
    ),
}
REQUIRED: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.visits: ("visit_id", "full_name", "date", "doctor"),
    ImportKind.completed: ("visit_id", "full_name", "date", "doctor"),
    ImportKind.patients: ("patient_id", "full_name"),
}
ALL_FIELDS = tuple(DEFAULT_HEADERS)


class PatientMisId(SQLModel, table=True):
    """A clinic's MIS patient id (card number) -> our patient. One patient may have a card
    in several clinics of the network."""

    __tablename__ = "patient_mis_id"
    clinic_id: str = Field(foreign_key="clinic.id", primary_key=True, max_length=32)
    mis_patient_id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class ImportMapping(SQLModel, table=True):
    """A clinic's import settings. `columns` maps our field names to the clinic's headers
    and overrides DEFAULT_HEADERS field by field."""

    __tablename__ = "import_mapping"
    clinic_id: str = Field(foreign_key="clinic.id", primary_key=True, max_length=32)
    columns: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # A visits file lists every visit of each day it covers: a visit of such a day that is
    # missing from the file was cancelled in the MIS.
    authoritative_days: bool = Field(default=False)
    daily_at: str = Field(default="06:00", max_length=5)  # clinic-local time of the drop pickup
    default_duration_minutes: int = Field(default=30)
    default_service: str = Field(default="Приём", max_length=200)
    updated_at: datetime = TZ(nullable=False, default=utcnow)


class ImportRun(SQLModel, table=True):
    __tablename__ = "import_run"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_import_run_dedup_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    kind: ImportKind = EnumField(ImportKind)
    state: ImportState = EnumField(ImportState, default=ImportState.queued, index=True)
    source: str = Field(max_length=16)  # api | cli | drop
    file_name: str = Field(max_length=255)
    sha256: str = Field(max_length=64, index=True)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    dedup_key: str | None = Field(default=None, max_length=255)  # drop folder: clinic + content hash
    workflow_id: str = Field(max_length=255)
    total_rows: int | None = None
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # field -> header
    error: str | None = Field(default=None, max_length=1000)  # the file could not be read
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    started_at: datetime | None = TZ(nullable=True)
    finished_at: datetime | None = TZ(nullable=True)


class RowState(enum.StrEnum):
    pending = "pending"  # parsed, not applied yet
    committed = "committed"  # database change committed; the journey start/update follows
    done = "done"


class ImportRow(SQLModel, table=True):
    """One row of the file (row = the spreadsheet's row number, header = 1), or a visit
    cancelled because it is missing from an authoritative file (row = -1, -2, ...)."""

    __tablename__ = "import_row"
    __table_args__ = (Index("ix_import_row_batch", "import_id", "batch"),)
    import_id: str = Field(foreign_key="import_run.id", primary_key=True, max_length=32)
    row: int = Field(primary_key=True)
    batch: int = Field(default=0)
    phase: int = Field(default=0)  # phase 1 runs after phase 0 (rows naming a guardian)
    state: RowState = EnumField(RowState, default=RowState.pending)
    outcome: str | None = Field(default=None, max_length=16)
    column: str | None = Field(default=None, max_length=100)
    reason: str | None = Field(default=None, max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    appointment_id: str | None = Field(default=None, max_length=32)
    patient_id: str | None = Field(default=None, max_length=32)


OUTCOMES = ("created", "rescheduled", "cancelled", "unchanged", "updated", "errors")
