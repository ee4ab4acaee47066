"""What a clinic says to its patients, as data: template overrides per (kind, language) and
the service catalogue whose entries point at care memos. Built-in defaults live in
core/texts; these rows are a clinic's own edits and additions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.core import TZ, new_id, utcnow


class MessageTemplate(SQLModel, table=True):
    __tablename__ = "message_template"
    __table_args__ = (UniqueConstraint("clinic_id", "kind", "language", name="uq_message_template_kind_language"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    kind: str = Field(max_length=64)
    language: str = Field(max_length=8)
    body: str = Field(sa_column=Column(Text, nullable=False))
    updated_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)


class Service(SQLModel, table=True):
    """A clinic's catalogue entry. `aliases` are other names it goes by (other languages,
    the MIS's spelling); a free-text booking matches code, name or alias."""

    __table_args__ = (UniqueConstraint("clinic_id", "code", name="uq_service_clinic_code"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    specialty: str | None = Field(default=None, max_length=100)
    duration_minutes: int = Field(default=30)
    memo_before: str | None = Field(default=None, max_length=64)  # memo code (template kind memo.<code>)
    memo_after: str | None = Field(default=None, max_length=64)
    active: bool = Field(default=True)
    extra: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)
