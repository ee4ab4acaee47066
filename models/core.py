"""Foundation tables (clinics, doctors, patients, staff, operator tasks, message log) and
their API schemas: `XBase` shared fields, `XCreate` input, `XPublic` output, `X` table."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Column, DateTime, Index, TypeDecorator, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from contracts.policy import DEFAULT_POLICY, DURATION_FIELDS, JourneyPolicy, QuietHours


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and read back timezone-aware, on SQLite (text, which would
    otherwise drop the offset and compare wall-clock strings) and PostgreSQL (timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def TZ(**kw: Any) -> Any:  # noqa: N802 - a column factory
    """A timestamp column, always UTC and timezone-aware (see UTCDateTime)."""
    return Field(sa_column=Column(UTCDateTime(), **kw))


def EnumField(
    enum_cls: type[enum.Enum],
    default: Any = None,
    index: bool = False,  # noqa: N802
    nullable: bool = False,
) -> Any:
    """Enums stored as plain VARCHAR (no native DB enum type: migrations stay portable)."""
    kind = SAEnum(enum_cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    col: Column[Any] = Column(kind, index=index, nullable=nullable)
    return Field(default=default, sa_column=col)


# ---------------------------------------------------------------------------- enums
class Role(enum.StrEnum):
    front_desk = "front_desk"
    operator = "operator"
    doctor = "doctor"
    accountant = "accountant"
    deputy_director = "deputy_director"
    director = "director"
    ops = "ops"
    admin = "admin"


class Channel(enum.StrEnum):
    whatsapp = "whatsapp"
    telegram = "telegram"
    sms = "sms"
    voice = "voice"
    web = "web"  # the patient's own page (/p/<token>): inbound only, never a send channel


class TaskState(enum.StrEnum):
    """FHIR R4 Task.status subset used by the operator queue."""

    requested = "requested"
    in_progress = "in-progress"
    completed = "completed"
    cancelled = "cancelled"


# ---------------------------------------------------------------------------- validators
def normalize_phone(v: str | None) -> str | None:
    if v is None or v == "":
        return None
    try:
        num = phonenumbers.parse(v, None)
    except phonenumbers.NumberParseException as e:
        raise ValueError("phone must be in E.164 form, e.g. +380671234567") from e
    if not phonenumbers.is_valid_number(num):
        raise ValueError("phone is not a valid number; use E.164 form, e.g. +380671234567")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def check_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"{v!r} is not an IANA timezone (e.g. Europe/Kyiv)") from e
    return v


LANGUAGES = ("ru", "uk", "en")


def check_language(v: str) -> str:
    if v not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    return v


_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def check_code(v: str | None) -> str | None:
    if v is not None and not _CODE.match(v):
        raise ValueError("code must be 1-32 lowercase letters, digits, '-' or '_' (it names the drop folder)")
    return v


# ---------------------------------------------------------------------------- lead sources
# Where a patient came from (management's "patients by source" report). Each clinic keeps its
# own list (`clinic.lead_sources`); this is the list a new clinic starts with and the one a
# patient without a clinic is checked against. Values are short slugs; labels are the UI's.
DEFAULT_LEAD_SOURCES: tuple[str, ...] = (
    "site",
    "call",
    "referral",
    "instagram",
    "facebook",
    "prodoctorov",
    "google",
    "walk_in",
    "other",
)
_LEAD_SOURCE = r"^[a-z0-9][a-z0-9_]{0,31}$"


def check_lead_sources(v: list[str]) -> list[str]:
    out: list[str] = []
    for s in v:
        s = s.strip().lower()
        if not re.fullmatch(_LEAD_SOURCE, s):
            raise ValueError(f"lead source {s!r} must be a slug of a-z, 0-9 and _ (at most 32 characters)")
        if s not in out:
            out.append(s)
    if not out:
        raise ValueError("a clinic needs at least one lead source")
    if len(out) > 100:
        raise ValueError("at most 100 lead sources")
    return out


_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


def check_template_name(v: str | None) -> str | None:
    if v is not None and not _TEMPLATE_NAME.match(v):
        raise ValueError("a WhatsApp template name: lowercase letters, digits and underscores")
    return v


# ---------------------------------------------------------------------------- policy (API)
_D = DEFAULT_POLICY  # the one place the defaults are written (contracts/policy.py)
_DQ = QuietHours()


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str = PField(_DQ.start, pattern=_HHMM)
    end: str = PField(_DQ.end, pattern=_HHMM)


# Upper bound of each policy duration (the lower bound is 0: tests compress hours to seconds).
POLICY_DURATION_BOUNDS: dict[str, timedelta] = {
    "reminder_lead": timedelta(days=30),
    "reask_interval": timedelta(days=7),
    "voice_call_after": timedelta(days=7),
    "confirm_deadline": timedelta(days=7),
    "no_show_grace": timedelta(days=1),
    "feedback_delay": timedelta(days=30),
    "survey_timeout": timedelta(days=90),
    "lab_results_after": timedelta(days=365),
    "waitlist_wave_interval": timedelta(days=1),
    "waitlist_stop_before": timedelta(days=7),
}


assert set(POLICY_DURATION_BOUNDS) == set(DURATION_FIELDS), "every policy duration needs its bound"


def _iso(td: timedelta) -> str:
    return f"P{td.days}D" if not td.seconds else f"PT{int(td.total_seconds())}S"


class PolicyIn(BaseModel):
    """Durations accept ISO-8601 (`PT24H`, `P3D`) or seconds (`86400`, `1.5`). Defaults and
    field names are those of `JourneyPolicy`; this model adds the bounds."""

    model_config = ConfigDict(extra="forbid")
    reminder_lead: timedelta = _D.reminder_lead_td
    reask_interval: timedelta = _D.reask_interval_td
    reask_count: int = PField(_D.reask_count, ge=0, le=10)
    voice_call_after: timedelta | None = None  # unset: the robot call follows reask_interval
    voice_call_attempts: int = PField(_D.voice_call_attempts, ge=0, le=5)
    confirm_deadline: timedelta = _D.confirm_deadline_td
    no_show_grace: timedelta = _D.no_show_grace_td
    require_check_in: bool = _D.require_check_in
    feedback_delay: timedelta = _D.feedback_delay_td
    survey_timeout: timedelta = _D.survey_timeout_td
    quiet_hours: QuietHoursIn | None = PField(default_factory=QuietHoursIn)  # type: ignore[arg-type]
    review_link_to: Literal["promoters", "everyone"] = "promoters"
    callback_hour: str = PField(_D.callback_hour, pattern=_HHMM)
    lab_results_after: timedelta = _D.lab_results_after_td
    waitlist_wave_size: int = PField(_D.waitlist_wave_size, ge=1, le=10)
    waitlist_wave_interval: timedelta = _D.waitlist_wave_interval_td
    waitlist_stop_before: timedelta = _D.waitlist_stop_before_td
    max_history_events: int = PField(_D.max_history_events, ge=100, le=40000)

    @field_validator(*DURATION_FIELDS)
    @classmethod
    def _bounded(cls, v: timedelta | None, info: ValidationInfo) -> timedelta | None:
        """Every duration within a sane range, so a journey's timers always fit a calendar."""
        if v is None:
            return v
        top = POLICY_DURATION_BOUNDS[str(info.field_name)]
        if v.total_seconds() < 0:
            raise ValueError(f"{info.field_name} must not be negative")
        if v > top:
            raise ValueError(f"{info.field_name} must be at most {_iso(top)}")
        return v

    @field_validator("waitlist_wave_interval")
    @classmethod
    def _a_wave_has_time(cls, v: timedelta) -> timedelta:
        # Patients of one wave need a moment to answer before the next wave is asked.
        if v.total_seconds() < 1:
            raise ValueError("waitlist_wave_interval must be at least 1 second")
        return v

    def to_policy(self) -> JourneyPolicy:
        d = self.model_dump()
        qh = d.pop("quiet_hours")
        kw: dict[str, Any] = {k: (v.total_seconds() if isinstance(v, timedelta) else v) for k, v in d.items()}
        return JourneyPolicy(**kw, quiet_hours=QuietHours(**qh) if qh else None)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def policy_from_json(data: dict[str, Any] | None) -> JourneyPolicy:
    return PolicyIn.model_validate(data or {}).to_policy()


# ---------------------------------------------------------------------------- clinics
class _ClinicChecks(SQLModel):
    """The field checks a new clinic and a patch of one share (in a patch, None = unchanged)."""

    @field_validator("language", check_fields=False)
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return check_language(v) if v is not None else v

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return check_timezone(v) if v is not None else v

    @field_validator("phone", check_fields=False)
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalize_phone(v)

    @field_validator("code", check_fields=False)
    @classmethod
    def _code(cls, v: str | None) -> str | None:
        return check_code(v)

    @field_validator("whatsapp_reply_template", check_fields=False)
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return check_template_name(v)


class ClinicBase(_ClinicChecks):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    phone: str = Field(max_length=32)
    timezone: str = Field(default="Europe/Kyiv", max_length=64)
    review_url: str | None = Field(default=None, max_length=1000)
    # Short code naming the clinic's MIS drop folder: IMPORT_DIR/<code>/ (lowercase).
    code: str | None = Field(default=None, max_length=32)
    # What the clinic's patients read (a patient may override it): ru, uk or en.
    language: str = Field(default="ru", max_length=8)
    # The approved WhatsApp template used outside the 24-hour window: its name and language
    # code as registered in Meta's WhatsApp Manager (language defaults to the clinic's).
    whatsapp_template: str = Field(default="appointment_notice", min_length=1, max_length=512)
    whatsapp_template_language: str | None = Field(default=None, max_length=16)

    # An approved WhatsApp template (one body variable) for staff replies outside the
    # 24-hour window; unset: such a reply is refused (409) and staff call or text instead.
    whatsapp_reply_template: str | None = Field(default=None, max_length=512)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:  # type: ignore[override]  # a new clinic needs a phone
        out = normalize_phone(v)
        if out is None:
            raise ValueError("phone is required")
        return out


class Clinic(ClinicBase, table=True):
    __table_args__ = (UniqueConstraint("code", name="uq_clinic_code"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lead_sources: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LEAD_SOURCES), sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = TZ(nullable=False, default=utcnow)


class ClinicCreate(ClinicBase):
    policy: PolicyIn = PField(default_factory=PolicyIn)  # type: ignore[arg-type]
    lead_sources: list[str] = PField(default_factory=lambda: list(DEFAULT_LEAD_SOURCES))

    @field_validator("lead_sources")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        return check_lead_sources(v)


class ClinicUpdate(_ClinicChecks):
    name: str | None = None
    address: str | None = None
    phone: str | None = None
    timezone: str | None = None
    review_url: str | None = None
    code: str | None = Field(default=None, max_length=32)

    whatsapp_reply_template: str | None = Field(default=None, max_length=512)
    language: str | None = None
    whatsapp_template: str | None = Field(default=None, min_length=1, max_length=512)
    whatsapp_template_language: str | None = Field(default=None, max_length=16)
    policy: dict[str, Any] | None = None  # merged into the current policy, then validated
    lead_sources: list[str] | None = None  # replaces the list; patients keep the source they have

    @field_validator("lead_sources")
    @classmethod
    def _sources(cls, v: list[str] | None) -> list[str] | None:
        return check_lead_sources(v) if v is not None else v


class ClinicPublic(ClinicBase):
    id: str
    policy: dict[str, Any]
    lead_sources: list[str]
    created_at: datetime


# ---------------------------------------------------------------------------- doctors
class DoctorBase(SQLModel):
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    full_name: str = Field(min_length=1, max_length=200)
    specialty: str = Field(min_length=1, max_length=100)


class Doctor(DoctorBase, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class DoctorCreate(DoctorBase):
    pass


class DoctorPublic(DoctorBase):
    id: str
    created_at: datetime


# ---------------------------------------------------------------------------- patients
_CHAT_ID_HELP = "telegram_chat_id must be an integer or a string of digits (e.g. 700010002 or -1001234567890)"


def normalize_chat_id(v: object) -> str | None:
    """Telegram's `chat.id` is an integer in every Bot API object (negative for groups), so
    clients send a number or its text. Stored and answered as the canonical decimal string,
    the form our webhook reads from `message.chat.id`, whichever was sent."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError(_CHAT_ID_HELP)
    text = str(v).strip()
    if not text:
        return None  # an empty form field: no chat id
    if not re.fullmatch(r"-?\d{1,20}", text):
        raise ValueError(_CHAT_ID_HELP)
    n = int(text)
    if not -(2**63) <= n < 2**63:
        raise ValueError("telegram_chat_id is out of range (Telegram ids fit in 64 bits)")
    return str(n)


class PatientBase(SQLModel):
    full_name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=32, index=True)
    email: str | None = Field(default=None, max_length=320)
    birth_date: date | None = None
    preferred_channel: Channel = EnumField(Channel, default=Channel.sms)
    telegram_chat_id: str | None = Field(default=None, max_length=64, index=True)
    # Indexed: every inbound message looks up the sender's dependants by it (issue 14).
    guardian_id: str | None = Field(default=None, foreign_key="patient.id", max_length=32, index=True)
    clinic_id: str | None = Field(default=None, foreign_key="clinic.id", max_length=32)
    # lead source (one of the clinic's `lead_sources`, or DEFAULT_LEAD_SOURCES without a clinic)
    source: str | None = Field(default=None, max_length=32, index=True)
    language: str | None = Field(default=None, max_length=8)  # overrides the clinic's language
    # No campaigns (recall, bonus, birthday); appointment messages still go. STOP stops both.
    marketing_opt_out: bool = Field(default=False)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalize_phone(v)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        return (v.strip().lower() or None) if v is not None else None

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return check_language(v) if v is not None else v

    @field_validator("telegram_chat_id", mode="before")
    @classmethod
    def _chat_id(cls, v: object) -> object:
        return normalize_chat_id(v)

    @field_validator("preferred_channel")
    @classmethod
    def _channel(cls, v: Channel) -> Channel:
        if v == Channel.web:
            raise ValueError("web is the patient's page, not a channel we send on: whatsapp, telegram, sms or voice")
        return v

    @field_validator("birth_date")
    @classmethod
    def _birth(cls, v: date | None) -> date | None:
        if v is not None and v > date.today():
            raise ValueError("birth_date is in the future")
        return v


class Patient(PatientBase, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    opted_out: bool = Field(default=False)  # STOP received; START clears it
    opted_out_at: datetime | None = TZ(nullable=True)
    loyalty_points: int = Field(default=0)
    last_visit_on: date | None = None  # from the MIS patient base (visits before our time)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class PatientCreate(PatientBase):
    pass


class PatientPublic(PatientBase):
    id: str
    opted_out: bool
    created_at: datetime


# ---------------------------------------------------------------------------- staff
class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    username: str = Field(index=True, unique=True, max_length=100)
    password_hash: str = Field(max_length=255)
    role: Role = EnumField(Role)
    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    clinic_id: str | None = Field(default=None, foreign_key="clinic.id", max_length=32)
    active: bool = Field(default=True)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    # Tokens issued before this moment are refused (set when a user is deactivated).
    tokens_valid_after: datetime | None = TZ(nullable=True)


class StaffPublic(SQLModel):
    id: str
    username: str
    role: Role
    full_name: str | None
    email: str | None
    clinic_id: str | None
    active: bool = True


class LoginFailure(SQLModel, table=True):
    """One failed login, under `user:<name>` and `addr:<client address>` (the throttle)."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_at", "key", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200)
    at: datetime = TZ(nullable=False)


# ---------------------------------------------------------------------------- operator tasks
class OperatorTask(SQLModel, table=True):
    """A to-do for a person (call-centre operator, director...), FHIR Task-like.

    `dedup_key` makes creation idempotent: an activity retried or replayed creates one task.
    """

    __tablename__ = "operator_task"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_operator_task_dedup_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    dedup_key: str = Field(max_length=255)
    kind: str = Field(index=True, max_length=64)
    state: TaskState = EnumField(TaskState, default=TaskState.requested, index=True)
    assigned_role: Role = EnumField(Role, default=Role.operator)
    clinic_id: str | None = Field(default=None, index=True, max_length=32)
    patient_id: str | None = Field(default=None, index=True, max_length=32)
    subject_type: str | None = Field(default=None, max_length=32)  # appointment, plan, invoice
    subject_id: str | None = Field(default=None, index=True, max_length=64)
    workflow_id: str | None = Field(default=None, max_length=255)
    title: str = Field(max_length=300)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    due_at: datetime | None = TZ(nullable=True)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    completed_at: datetime | None = TZ(nullable=True)
    completed_by: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=1000)


class OperatorTaskPublic(SQLModel):
    id: str
    kind: str
    state: TaskState
    assigned_role: Role
    clinic_id: str | None
    patient_id: str | None
    subject_type: str | None
    subject_id: str | None
    workflow_id: str | None
    title: str
    details: dict[str, Any]
    due_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    outcome: str | None


# ---------------------------------------------------------------------------- message log
class MessageLog(SQLModel, table=True):
    """Every message in or out. Outbound rows are written *before* the provider call under a
    unique idempotency key (workflow id + appointment version + step), so a retried or replayed
    activity never sends twice. Inbound rows dedup provider redeliveries (wamid, update_id,
    MessageSid, CallSid+status) on the same unique key."""

    __tablename__ = "message_log"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_message_log_idempotency_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    idempotency_key: str = Field(max_length=255)
    direction: str = Field(max_length=8)  # out | in
    channel: Channel = EnumField(Channel)
    kind: str = Field(max_length=64)  # booking_notice, reminder, reask, voice_call, reply, ...
    status: str = Field(default="pending", max_length=32)  # pending, sent, delivered, failed...
    patient_id: str | None = Field(default=None, index=True, max_length=32)
    recipient_id: str | None = Field(default=None, max_length=32)  # guardian for a child
    clinic_id: str | None = Field(default=None, index=True, max_length=32)
    subject_id: str | None = Field(default=None, index=True, max_length=64)
    workflow_id: str | None = Field(default=None, max_length=255)
    provider_message_id: str | None = Field(default=None, index=True, max_length=255)
    subject_type: str | None = Field(default=None, max_length=32)  # appointment, treatment_plan...
    # The patient this message is about: a child's message goes to (or comes from) the guardian.
    about_patient_id: str | None = Field(default=None, index=True, max_length=32)
    question_id: str | None = Field(default=None, max_length=32)  # asked (out) or answered (in)
    task_id: str | None = Field(default=None, max_length=32)  # raised by (in) / resolves (out)
    sent_by: str | None = Field(default=None, max_length=32)  # the staff user of a staff reply
    body: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)
