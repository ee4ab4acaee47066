"""Campaign tables and settings (issue 12): per-clinic settings of each campaign kind, and one
row per patient, kind and period — the key that makes a campaign reach a patient at most
once per period, whatever reruns, retries or crashes happen."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from contracts.campaigns import BIRTHDAY, BONUS, KINDS, RECALL
from models.core import TZ, utcnow

_NS = uuid.UUID("6f1d3c1e-9a57-4d0b-8a52-2f7c3c0b1e12")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_WAIT = timedelta(days=30)


def send_id(clinic_id: str, kind: str, patient_id: str, period: str) -> str:
    """The row's id (and, with the kind, its journey's workflow id): the same clinic, kind,
    patient and period always give the same id; it says nothing about the patient."""
    return uuid.uuid5(_NS, f"{clinic_id}:{kind}:{patient_id}:{period}").hex


# ---------------------------------------------------------------------------- tables
class CampaignSetting(SQLModel, table=True):
    __tablename__ = "campaign_setting"
    clinic_id: str = Field(foreign_key="clinic.id", primary_key=True, max_length=32)
    kind: str = Field(primary_key=True, max_length=16)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = TZ(nullable=False, default=utcnow)
    updated_by: str | None = Field(default=None, max_length=32)


class CampaignSend(SQLModel, table=True):
    """One patient's campaign of one kind in one period. `state`: claimed (the run picked the
    patient; the journey is starting) -> running -> accepted / declined / no_answer / booked /
    opted_out / not_sent."""

    __tablename__ = "campaign_send"
    __table_args__ = (
        UniqueConstraint("clinic_id", "kind", "patient_id", "period", name="uq_campaign_send_period"),
        Index("ix_campaign_send_clinic_kind_state", "clinic_id", "kind", "state"),
    )
    id: str = Field(primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", max_length=32)
    kind: str = Field(max_length=16)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    period: str = Field(max_length=64)
    state: str = Field(default="claimed", max_length=32)
    workflow_id: str = Field(max_length=255)
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=300)
    task_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)


# ---------------------------------------------------------------------------- settings
def _bounded(name: str, v: timedelta | None, top: timedelta = MAX_WAIT) -> timedelta | None:
    if v is None:
        return v
    if v.total_seconds() < 0:
        raise ValueError(f"{name} must not be negative")
    if v > top:
        raise ValueError(f"{name} must be at most P{top.days}D")
    return v


class _Common(BaseModel):
    """What every campaign kind has. Durations take ISO-8601 (`P3D`, `PT30S`) or seconds."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    send_at: str = PField("10:00", description="clinic-local time of the daily run (HH:MM)")
    offer: str = PField("", max_length=200, description="the text variable {offer}, e.g. «гигиена −20 %»")
    booking_link: str | None = PField(
        None, max_length=500, description="online booking page; a «yes» gets it instead of an operator's call"
    )
    reask_after: timedelta | None = PField(None, description="silence after the invitation: ask once more after this")
    answer_window: timedelta = PField(timedelta(days=3), description="after the last ask, wait this long, then close")
    daily_limit: int = PField(500, ge=1, le=5000, description="at most this many patients invited per run")

    @field_validator("send_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("send_at must be HH:MM, e.g. 10:00")
        return v

    @field_validator("booking_link")
    @classmethod
    def _link(cls, v: str | None) -> str | None:
        if v is None or v.strip() == "":
            return None
        if not re.match(r"^https?://[^\s]+$", v.strip()):
            raise ValueError("booking_link must be an http(s) URL")
        return v.strip()

    @field_validator("reask_after", "answer_window")
    @classmethod
    def _durations(cls, v: timedelta | None, info: ValidationInfo) -> timedelta | None:
        return _bounded(str(info.field_name), v)


class RecallSettings(_Common):
    """Patients whose last finished visit was between `min_months` and `max_months` ago and
    who have nothing booked since."""

    reask_after: timedelta | None = timedelta(days=3)
    min_months: int = PField(5, ge=1, le=24)
    max_months: int = PField(6, ge=2, le=36)

    @model_validator(mode="after")
    def _window(self) -> RecallSettings:
        if self.max_months <= self.min_months:
            raise ValueError("max_months must be greater than min_months")
        return self


class BonusSettings(_Common):
    """Patients whose bonus balance is at least `threshold`: once per crossing of it, and
    again every `repeat_days` while it stays there."""

    reask_after: timedelta | None = timedelta(days=3)
    threshold: int = PField(2250, ge=1, le=1_000_000)
    repeat_days: int = PField(30, ge=1, le=365)


class BirthdaySettings(_Common):
    """Patients whose birthday is today in the clinic's timezone: once a year."""


SETTINGS_MODELS: dict[str, type[_Common]] = {RECALL: RecallSettings, BONUS: BonusSettings, BIRTHDAY: BirthdaySettings}
assert set(SETTINGS_MODELS) == set(KINDS)


def parse_settings(kind: str, data: dict[str, Any] | None) -> _Common:
    return SETTINGS_MODELS[kind].model_validate(data or {})


class CampaignSettingsOut(BaseModel):
    clinic_id: str
    kind: str
    schedule_id: str
    settings: dict[str, Any]
    updated_at: datetime | None = None


class MarketingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opt_out: bool
