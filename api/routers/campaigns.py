"""Campaigns over HTTP (issue 12): a clinic's recall / bonus / birthday settings (switching one
on creates its daily Schedule, off removes it), who was invited and how it ended, and a
patient's marketing opt-out."""

from __future__ import annotations

import enum
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic import Field as PField
from sqlmodel import col, select

from api import policy
from api.deps import MAX_OFFSET, SessionDep, SettingsDep, TemporalDep
from api.errors import invalid_field
from contracts.campaigns import BIRTHDAY, BONUS, RECALL, schedule_id
from core import campaigns
from models.campaigns import CampaignSend, CampaignSetting, CampaignSettingsOut, MarketingIn, parse_settings
from models.core import Clinic, Patient, PatientPublic, StaffUser, utcnow

router = APIRouter(prefix="/v1", tags=["campaigns"])
Reader = Annotated[StaffUser, policy.may("campaigns", "read")]
Manager = Annotated[StaffUser, policy.may("campaigns", "manage")]
PatientWriter = Annotated[StaffUser, policy.may("patients", "create")]


class Kind(enum.StrEnum):
    recall = RECALL
    bonus = BONUS
    birthday = BIRTHDAY


class CampaignSettingsIn(BaseModel):
    """Fields not sent keep their current value (a new campaign: the defaults). A field of
    another kind (`threshold` on recall) is 422."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    send_at: str | None = PField(None, description="clinic-local HH:MM of the daily run")
    offer: str | None = PField(None, description="the text variable {offer}")
    booking_link: str | None = PField(None, description="a «yes» gets this link instead of an operator's call")
    reask_after: timedelta | None = PField(None, description="ISO-8601 or seconds; null: no re-ask")
    answer_window: timedelta | None = None
    daily_limit: int | None = None
    min_months: int | None = PField(None, description="recall: last visit at least this many months ago")
    max_months: int | None = PField(None, description="recall: ... and at most this many")
    threshold: int | None = PField(None, description="bonus: balance at least this (default 2250)")
    repeat_days: int | None = PField(None, description="bonus: remind again after this many days")


class SendOut(BaseModel):
    id: str
    patient_id: str
    kind: str
    period: str
    state: str
    note: str | None
    task_id: str | None
    workflow_id: str
    created_at: datetime
    updated_at: datetime | None


async def _clinic(session: SessionDep, clinic_id: str, user: StaffUser) -> Clinic:
    clinic = await session.get(Clinic, clinic_id)
    if clinic is None or not policy.in_scope(user, clinic.id):
        raise policy.not_found("clinic", clinic_id)
    return clinic


def _out(clinic_id: str, kind: str, settings: Any, row: CampaignSetting | None) -> CampaignSettingsOut:
    return CampaignSettingsOut(
        clinic_id=clinic_id,
        kind=kind,
        schedule_id=schedule_id(clinic_id, kind),
        settings=settings.model_dump(mode="json"),
        updated_at=row.updated_at if row else None,
    )


@router.get("/clinics/{clinic_id}/campaigns", response_model=list[CampaignSettingsOut])
async def list_campaigns(clinic_id: str, session: SessionDep, user: Reader) -> list[CampaignSettingsOut]:
    clinic = await _clinic(session, clinic_id, user)
    out = []
    for kind in Kind:
        row = await session.get(CampaignSetting, (clinic.id, kind.value))
        out.append(_out(clinic.id, kind.value, parse_settings(kind.value, row.settings if row else None), row))
    return out


@router.get("/clinics/{clinic_id}/campaigns/{kind}", response_model=CampaignSettingsOut)
async def get_campaign(clinic_id: str, kind: Kind, session: SessionDep, user: Reader) -> CampaignSettingsOut:
    clinic = await _clinic(session, clinic_id, user)
    row = await session.get(CampaignSetting, (clinic.id, kind.value))
    return _out(clinic.id, kind.value, parse_settings(kind.value, row.settings if row else None), row)


@router.put("/clinics/{clinic_id}/campaigns/{kind}", response_model=CampaignSettingsOut)
async def put_campaign(
    clinic_id: str,
    kind: Kind,
    body: CampaignSettingsIn,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    user: Manager,
) -> CampaignSettingsOut:
    clinic = await _clinic(session, clinic_id, user)
    row = await session.get(CampaignSetting, (clinic.id, kind.value))
    merged = {**(row.settings if row else {}), **body.model_dump(mode="json", exclude_unset=True)}
    try:
        new = parse_settings(kind.value, merged)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "body"
        if err["type"] == "extra_forbidden":
            raise invalid_field(field, f"{field} is not a setting of the {kind.value} campaign") from None
        raise invalid_field(field, str(err["msg"]).removeprefix("Value error, ")) from None
    # The Schedule first: if Temporal refuses, nothing is saved (503 from the dependency).
    await campaigns.ensure_schedule(temporal, settings.temporal_task_queue, clinic, kind.value, new)
    row = row or CampaignSetting(clinic_id=clinic.id, kind=kind.value)
    row.settings, row.updated_at, row.updated_by = new.model_dump(mode="json"), utcnow(), user.id
    session.add(row)
    await session.commit()
    return _out(clinic.id, kind.value, new, row)


SANE_DATES = (date(2000, 1, 1), date(2100, 12, 31))


class SummaryOut(BaseModel):
    clinic_id: str
    kind: str
    since: date
    until: date
    invited: int = PField(description="invitations that went out")
    by_state: dict[str, int]
    booked_within_30_days: int = PField(description="of those invited, booked a visit within 30 days")
    conversion: float | None = PField(description="booked_within_30_days / invited")


@router.get("/clinics/{clinic_id}/campaigns/{kind}/summary", response_model=SummaryOut)
async def get_summary(
    clinic_id: str,
    kind: Kind,
    session: SessionDep,
    user: Reader,
    since: date | None = Query(None, alias="from", description="first day (clinic time); default 30 days ago"),
    until: date | None = Query(None, alias="to", description="last day, inclusive; default today"),
) -> SummaryOut:
    """How the invitations of a period ended and how many brought a booking."""
    clinic = await _clinic(session, clinic_id, user)
    for name, d in (("from", since), ("to", until)):
        if d is not None and not SANE_DATES[0] <= d <= SANE_DATES[1]:
            raise invalid_field(name, f"{name} must be between {SANE_DATES[0]} and {SANE_DATES[1]}")
    today = campaigns.local_today(clinic)
    until = until or today
    since = since or until - timedelta(days=30)
    if since > until:
        raise invalid_field("from", "from must not be after to")
    if (until - since).days > 3660:
        raise invalid_field("from", "at most 10 years at once")
    zone = ZoneInfo(clinic.timezone)
    got = await campaigns.summary(
        session,
        clinic.id,
        kind.value,
        datetime.combine(since, time(0), zone),
        datetime.combine(until + timedelta(days=1), time(0), zone),
    )
    return SummaryOut(
        clinic_id=clinic.id,
        kind=kind.value,
        since=since,
        until=until,
        invited=got.invited,
        by_state=got.by_state,
        booked_within_30_days=got.booked_within_30_days,
        conversion=round(got.booked_within_30_days / got.invited, 3) if got.invited else None,
    )


class RunStarted(BaseModel):
    workflow_id: str


@router.post("/clinics/{clinic_id}/campaigns/{kind}/run", response_model=RunStarted, status_code=202)
async def run_now(
    clinic_id: str, kind: Kind, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, user: Manager
) -> RunStarted:
    """Run the campaign now instead of at `send_at` (the same run as the Schedule's: whoever
    was invited this period is not invited again; quiet hours still hold). 409 while off."""
    clinic = await _clinic(session, clinic_id, user)
    if not (await campaigns.settings_of(session, clinic.id, kind.value)).enabled:
        raise HTTPException(409, f"the {kind.value} campaign is off: PUT {{'enabled': true}} first")
    wf_id = await campaigns.start_run(temporal, settings.temporal_task_queue, clinic.id, kind.value)
    return RunStarted(workflow_id=wf_id)


@router.get("/clinics/{clinic_id}/campaigns/{kind}/sends", response_model=list[SendOut])
async def list_sends(
    clinic_id: str,
    kind: Kind,
    session: SessionDep,
    user: Reader,
    state: str | None = Query(None, max_length=32),
    patient_id: str | None = Query(None, max_length=32),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[CampaignSend]:
    """Who this campaign reached, one row per patient and period, newest first."""
    clinic = await _clinic(session, clinic_id, user)
    q = select(CampaignSend).where(CampaignSend.clinic_id == clinic.id, CampaignSend.kind == kind.value)
    if state:
        q = q.where(CampaignSend.state == state)
    if patient_id:
        q = q.where(CampaignSend.patient_id == patient_id)
    q = q.order_by(col(CampaignSend.created_at).desc(), col(CampaignSend.id)).offset(offset).limit(limit)
    return list((await session.exec(q)).all())


@router.put("/patients/{patient_id}/marketing", response_model=PatientPublic)
async def put_marketing(patient_id: str, body: MarketingIn, session: SessionDep, user: PatientWriter) -> Patient:
    """`{"opt_out": true}`: no more campaigns for this patient; appointment messages still go
    (STOP from the patient stops both)."""
    patient = await policy.patient_visible(session, user, patient_id)
    if patient is None:
        raise policy.not_found("patient", patient_id)
    patient.marketing_opt_out = body.opt_out
    session.add(patient)
    await session.commit()
    return patient
