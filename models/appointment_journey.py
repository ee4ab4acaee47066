"""The appointment journey's own state dataclasses (pure, workflow-safe). They live in
`models/` so `AppointmentInput.carried` can name them: continue-as-new passes the whole
state in the one input. Add fields with defaults; never rename."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo


@dataclass
class HistoryEntry:
    at: datetime
    event: str
    stage: str


@dataclass
class AppointmentContext:
    """What the messages need to say, loaded once by an activity (no patient data)."""

    clinic_name: str = ""
    clinic_address: str = ""
    clinic_phone: str = ""
    review_url: str | None = None
    doctor_name: str = ""
    feedback_url: str = ""
    link: str = ""


@dataclass
class JourneyState:
    """Everything the journey knows; carried over continue-as-new unchanged."""

    stage: str = "booked"
    version: int = 1
    starts_at: datetime | None = None
    duration_minutes: int = 30
    asks_sent: int = 0  # this version: the day-before ask + its re-asks
    voice_calls: int = 0  # this version
    last_contact_at: datetime | None = None  # last ask or call of this version
    asks_stopped: bool = False  # confirmed/declined/deadline/opt-out: no automatic asks
    channel_dead: bool = False  # messenger and SMS failed for good: go to the voice call
    opted_out: bool = False
    notice_version: int = 0  # the version whose booking notice went out
    checked_in: bool = False
    finished_at: datetime | None = None
    post_memo_done: bool = False
    survey_sent_at: datetime | None = None
    nps: int | None = None
    nps_answered: bool = False
    closed: bool = False
    cancel_reason: str | None = None
    replies: int = 0  # counts every reply (task dedup keys)
    seen_message_ids: list[str] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    context: AppointmentContext | None = None
    synced_revision: int = 0
    revision: int = 0
    version_booked_at: datetime | None = None  # when this version's time was set


@dataclass
class AppointmentView:
    """The `state` query answer and every update's result (what the API returns)."""

    id: str
    workflow_id: str
    stage: str
    fhir_status: str
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    version: int
    asks_sent: int
    voice_calls: int
    nps: int | None
    clinic_id: str
    doctor_id: str
    patient_id: str
    service: str
    plan_id: str | None
    history: list[HistoryEntry]


@dataclass
class AppointmentSnapshot:
    """`sync_appointment` input: the row as the journey sees it (idempotent upsert)."""

    appointment_id: str
    workflow_id: str
    clinic_id: str
    doctor_id: str
    patient_id: str
    service: str
    plan_id: str | None
    stage: str
    version: int
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    asks_sent: int
    voice_calls: int
    nps: int | None
    cancel_reason: str | None
    history: list[HistoryEntry]


@dataclass
class ContextRequest:
    appointment_id: str
    clinic_id: str
    doctor_id: str


@dataclass
class RescheduleRequest:
    starts_at: datetime
    duration_minutes: int | None = None


@dataclass
class CancelRequest:
    reason: str = ""


@dataclass
class StaffAction:
    """confirm / check_in / finish: who did it (a staff id, never patient data)."""

    by: str | None = None
    note: str | None = None


@lru_cache(maxsize=256)
def clinic_zone(name: str) -> tzinfo:
    """A clinic's timezone. Called from workflow code through this passed-through module:
    the sandbox proxies `zoneinfo` itself, and a proxied tzinfo cannot be used by datetime."""
    return ZoneInfo(name)
