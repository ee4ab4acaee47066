"""Contracts between journeys, webhooks and activities: pure dataclasses (no SQLModel), safe
inside workflows. Versionable: add fields with defaults, never rename.

Names here are shared by several modules (appointment workflow, treatment-plan workflow,
webhooks, messaging activities); change them only together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.appointment_journey import JourneyState
from models.policy import JourneyPolicy

# ------------------------------------------------------------------ appointment journey
APPOINTMENT_WORKFLOW = "AppointmentJourney"
APPOINTMENT_REPLY_SIGNAL = "patient_reply"
# Every journey that asks the patient something takes these two signals (same names, same
# payloads): the answer (`PatientReply`), and "the question never arrived" (`DeliveryFailure`).
PATIENT_REPLY_SIGNAL = APPOINTMENT_REPLY_SIGNAL
DELIVERY_FAILED_SIGNAL = "delivery_failed"
APPOINTMENT_STATE_QUERY = "state"
# Fire-and-forget cancel from another journey (a cancelled treatment plan); staff use the
# validated `cancel` update instead. Ignored once the visit is past cancelling.
APPOINTMENT_CANCEL_SIGNAL = "cancel_requested"


def appointment_workflow_id(appointment_id: str) -> str:
    return f"appointment-{appointment_id}"


STAGES = ("booked", "confirmed", "needs_clarification", "checked_in", "finished", "no_show", "cancelled")
OPEN_STAGES = ("booked", "confirmed", "needs_clarification", "checked_in")
FHIR_STATUS = {
    "booked": "booked",
    "confirmed": "booked",
    "needs_clarification": "booked",
    "checked_in": "checked-in",
    "finished": "fulfilled",
    "no_show": "noshow",
    "cancelled": "cancelled",
}


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


@dataclass
class AppointmentOutcome:
    """What a finished appointment journey returns (a plan's child journey reports this)."""

    appointment_id: str
    stage: str  # finished, no_show or cancelled
    nps: int | None = None
    reason: str | None = None


# ------------------------------------------------------------------ patient replies
@dataclass
class PatientReply:
    """A patient's answer, signalled into the appointment journey by a webhook (or sandbox).

    kind: "text" (free text), "button" (button_id like "confirm:<appointment_id>"),
    "digit" (voice-call keypress), "call_status" (voice call ended without a digit).
    """

    source: str  # whatsapp, telegram, sms, voice, sandbox, operator
    kind: str
    text: str | None = None
    button_id: str | None = None
    digit: str | None = None
    call_status: str | None = None
    provider_message_id: str | None = None
    received_at: datetime | None = None
    question_id: str | None = None  # the open question routing matched (None: nearest visit)
    question_kind: str | None = None
    message_id: str | None = None  # our inbound message_log row (links the task it raises)


# ------------------------------------------------------------------ open questions
# What kinds of answer a question understands (conversations.routing matches a reply to them).
ANSWER_YES_NO = "yes_no"  # confirm / decline words, confirm:/decline: buttons
ANSWER_SCORE = "score"  # 0..10, nps: buttons
ANSWER_DIGIT = "digit"  # a key press on a robot call


@dataclass
class Question:
    """A message that expects an answer. Sent along with the message (`OutboundMessage.question`,
    `VoiceCall.question`); the send activity records it as an open question once the message
    is out. Routing then delivers a matching reply to `workflow_id` as `signal`."""

    kind: str  # confirmation, voice_confirmation, survey, lab_results, ...
    subject_type: str  # appointment, treatment_plan, ...
    subject_id: str
    answers: list[str]  # ANSWER_* kinds it understands
    open_until: datetime | None = None  # aware; None: until the journey closes it
    signal: str = PATIENT_REPLY_SIGNAL
    subject_version: int | None = None  # an appointment's version: a reschedule closes older ones
    subject_state: str | None = None  # e.g. a plan's stage: moving on closes it


@dataclass
class DeliveryFailure:
    """Signal `delivery_failed`: the provider reported an asked question as failed or
    undelivered. The journey re-sends it on its next channel (excluding `failed_channels`)."""

    question_id: str
    question_kind: str
    message_key: str  # the idempotency key of the message that did not arrive
    failed_channels: list[str] = field(default_factory=list)
    status: str = "failed"


def button_id(action: str, appointment_id: str, value: str | None = None) -> str:
    """Button payloads name their appointment (≤ 64 bytes for Telegram callback_data):
    confirm:<id>, decline:<id>, nps:<id>:<0-10>."""
    return f"{action}:{appointment_id}" + (f":{value}" if value is not None else "")


def parse_button_id(raw: str) -> tuple[str, str, str | None] | None:
    parts = raw.split(":")
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None


# ------------------------------------------------------------------ outbound messages
@dataclass
class Button:
    id: str  # ≤ 256 chars (WhatsApp), ≤ 64 bytes (Telegram)
    title: str  # ≤ 20 chars (WhatsApp)


@dataclass
class OutboundMessage:
    """Activity `send_patient_message` input. The activity resolves the recipient (a child's
    guardian), honours opt-out, walks the channel order (messenger -> SMS) and records the
    send under `idempotency_key` before calling the provider, so it never sends twice."""

    idempotency_key: str  # workflow id + appointment version + step
    patient_id: str
    clinic_id: str
    kind: str  # booking_notice, reminder, reask, care_memo, survey, review_link, thanks, ...
    text: str
    subject_id: str | None = None  # appointment / plan id
    workflow_id: str | None = None
    buttons: list[Button] = field(default_factory=list)
    template: str | None = None  # WhatsApp template name outside the 24-hour window
    question: Question | None = None  # this message asks something: record an open question
    exclude_channels: list[str] = field(default_factory=list)  # re-send after these failed


@dataclass
class VoiceCall:
    """Activity `place_voice_call` input: a robot call that gathers one digit (1 / 2)."""

    idempotency_key: str
    patient_id: str
    clinic_id: str
    prompt: str
    subject_id: str | None = None
    workflow_id: str | None = None
    question: Question | None = None


@dataclass
class SendResult:
    # sent | opted_out | no_channel | failed
    status: str
    channel: str | None = None
    provider_message_id: str | None = None
    duplicate: bool = False  # the idempotency key was already used: nothing was sent again
