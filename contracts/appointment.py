"""The appointment journey's contract (SPEC §3): names, input, state, THE snapshot, commands.

`AppointmentSnapshot` is the one record of an appointment: the journey's `state` query
answer and every update's result, the `sync_appointment` activity's input, the columns the
activity writes into the `appointment` row, and (via `model_validate(..., from_attributes=True)`)
the API's `AppointmentOut`. A new field is added here once and flows through.

Pure: no I/O library is imported. Add fields with defaults; never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity

from contracts.common import PATIENT_REPLY_SIGNAL, OutboundMessage, SendResult
from contracts.policy import JourneyPolicy

# ------------------------------------------------------------------ names
APPOINTMENT_WORKFLOW = "AppointmentJourney"
APPOINTMENT_REPLY_SIGNAL = PATIENT_REPLY_SIGNAL  # "patient_reply" (contracts.common)
APPOINTMENT_STATE_QUERY = "state"
# Fire-and-forget cancel from another journey (a cancelled treatment plan); staff use the
# validated `cancel` update instead. Ignored once the visit is past cancelling.
APPOINTMENT_CANCEL_SIGNAL = "cancel_requested"


def appointment_workflow_id(appointment_id: str) -> str:
    return f"appointment-{appointment_id}"


# ------------------------------------------------------------------ stages
# appointment.source: booked at the desk (POST /v1/appointments), by the daily MIS import,
# by a treatment plan's stage, or from the waiting list by a slot offer.
SOURCES = ("desk", "import", "plan", "waitlist")
STAGES = ("booked", "confirmed", "needs_clarification", "checked_in", "finished", "no_show", "cancelled")
OPEN_STAGES = ("booked", "confirmed", "needs_clarification", "checked_in")
BEFORE_VISIT = ("booked", "confirmed", "needs_clarification")
FHIR_STATUS = MappingProxyType(
    {
        "booked": "booked",
        "confirmed": "booked",
        "needs_clarification": "booked",
        "checked_in": "checked-in",
        "finished": "fulfilled",
        "no_show": "noshow",
        "cancelled": "cancelled",
    }
)


# ------------------------------------------------------------------ state
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
    unfitted_version: int = 0  # the version whose unfittable contacts were recorded (issue 16)
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
    feedback: str | None = None  # "like" / "dislike" answered to the survey instead of a score


# ------------------------------------------------------------------ input and outcome
@dataclass
class AppointmentInput:
    appointment_id: str
    clinic_id: str
    patient_id: str
    doctor_id: str
    starts_at: datetime  # aware, UTC
    duration_minutes: int
    service: str
    timezone: str  # the clinic's IANA timezone (quiet hours, call-back times)
    policy: JourneyPolicy = field(default_factory=JourneyPolicy)
    version: int = 1  # bumps on every reschedule; part of every send's idempotency key
    plan_id: str | None = None  # set when a treatment plan booked this visit
    booked_at: datetime | None = None
    carried: JourneyState | None = None  # continue-as-new: the journey's state so far
    service_code: str | None = None  # the clinic catalogue's code (memos, the service's name)
    source: str | None = None  # where the booking came from (SOURCES); None: not recorded


@dataclass
class AppointmentOutcome:
    """What a finished appointment journey returns (a plan's child journey reports this)."""

    appointment_id: str
    stage: str  # finished, no_show or cancelled
    nps: int | None = None
    reason: str | None = None


# ------------------------------------------------------------------ the snapshot
@dataclass
class AppointmentSnapshot:
    """The one record of an appointment (see the module docstring for where it flows).
    Field names are the `appointment` table's columns, except `appointment_id` (the row's
    `id`, exposed as the `id` property): the `sync_appointment` payload keeps that name."""

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
    service_code: str | None = None
    # Where the booking came from (SOURCES), set at booking and carried by the journey's
    # input. None: not carried (a plan's child journey, a journey started before the field existed;
    # sync_appointment then keeps the row's value).
    source: str | None = None
    # The journey's state counter (JourneyState.revision) this snapshot shows: the row keeps
    # it, so a row write made beside the journey (an ask's, in its send's own transaction:
    # AppointmentSend) lands only on the row it was computed from. None: not carried (the
    # row's value stays).
    journey_revision: int | None = None

    @property
    def id(self) -> str:
        return self.appointment_id

    @property
    def fhir_status(self) -> str:
        return FHIR_STATUS[self.stage]

    def columns(self) -> dict[str, Any]:
        """The row's columns as this snapshot has them (history as JSON-ready dicts)."""
        out: dict[str, Any] = {f: getattr(self, f) for f in SNAPSHOT_COLUMNS}
        out["id"] = self.appointment_id
        out["history"] = [{"at": h.at.isoformat(), "event": h.event, "stage": h.stage} for h in self.history]
        return out


@dataclass
class AppointmentSend:
    """Activity `send_appointment_message` input: a journey's message and, when it goes out,
    the row as the journey will then be (`row`, the journey's state after recording the send),
    written in the transaction that records the message as sent, only if the row still shows
    revision `row_was` (what the journey last wrote). The result's `row_written` says whether it
    did; if not, the journey records the send and writes its row as usual."""

    message: OutboundMessage
    row: AppointmentSnapshot
    row_was: int


SNAPSHOT_COLUMNS = tuple(f for f in AppointmentSnapshot.__dataclass_fields__ if f != "appointment_id")


# ------------------------------------------------------------------ commands
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


# ------------------------------------------------------------------ typed activity stubs
class AppointmentActivityStubs:
    """The journey's own activities (implemented by activities.appointments)."""

    @activity.defn(name="load_appointment_context")
    async def load_appointment_context(self, req: ContextRequest) -> AppointmentContext:
        raise NotImplementedError

    @activity.defn(name="sync_appointment")
    async def sync_appointment(self, snap: AppointmentSnapshot) -> None:
        raise NotImplementedError

    @activity.defn(name="send_appointment_message")
    async def send_appointment_message(self, req: AppointmentSend) -> SendResult:
        raise NotImplementedError
