"""Contracts shared by every journey: operator tasks, patient messages (outbound sends,
voice calls, replies) and e-mails. Pure dataclasses, safe inside workflows.
Versionable: add fields with defaults, never rename."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity

# Every journey that asks the patient something takes these two signals (same names, same
# payloads): the answer (`PatientReply`), and "the question never arrived" (`DeliveryFailure`).
PATIENT_REPLY_SIGNAL = "patient_reply"
DELIVERY_FAILED_SIGNAL = "delivery_failed"


# ------------------------------------------------------------------ operator tasks
@dataclass
class TaskRequest:
    """Raise an operator task. `dedup_key` (workflow id + version + step) makes it idempotent."""

    dedup_key: str
    kind: str
    title: str
    assigned_role: str = "operator"
    clinic_id: str | None = None
    patient_id: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    workflow_id: str | None = None
    due_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRef:
    task_id: str
    created: bool  # False when the dedup key already existed


@dataclass
class CancelTasks:
    """Close open tasks of a subject (e.g. the appointment got confirmed by phone)."""

    subject_id: str
    kinds: list[str] = field(default_factory=list)  # empty: every open task of the subject
    reason: str = ""


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
    # The patient the matched question is about (a child when the guardian answers): journeys
    # that ask several patients the same question (a waiting-list slot offer) tell them apart.
    patient_id: str | None = None


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
    title: str  # ≤ 20 chars (WhatsApp); "" -> rendered in the patient's language
    title_kind: str | None = None  # the template of an empty title (default: button.<action>)


@dataclass
class MessageFacts:
    """What the journey knows about the subject right now (a rescheduled visit's new time):
    the rendering activity reads everything else (names, address, language, templates)."""

    appointment_id: str | None = None
    plan_id: str | None = None
    doctor_id: str | None = None
    starts_at: datetime | None = None
    duration_minutes: int | None = None
    service: str | None = None
    service_code: str | None = None
    version: int | None = None
    nps: int | None = None
    campaign_send_id: str | None = None  # a campaign message: offer, last visit, points, link


@dataclass
class OutboundMessage:
    """Activity `send_patient_message` input. The activity resolves the recipient (a child's
    guardian), honours opt-out, walks the channel order (messenger -> SMS) and records the
    send under `idempotency_key` before calling the provider, so it never sends twice."""

    idempotency_key: str  # workflow id + appointment version + step
    patient_id: str
    clinic_id: str
    kind: str  # booking_notice, reminder, reask, care_memo, survey, review_link, thanks, ...
    text: str = ""  # ready text (histories from before templates); empty when `render`
    subject_id: str | None = None  # appointment / plan id
    workflow_id: str | None = None
    buttons: list[Button] = field(default_factory=list)  # a title "" is filled in the language
    template: str | None = None  # WhatsApp template name outside the 24-hour window
    question: Question | None = None  # this message asks something: record an open question
    exclude_channels: list[str] = field(default_factory=list)  # re-send after these failed
    # "Send kind K about subject S": the activity renders the clinic's template for `kind` in
    # the recipient's language from `facts` (core/texts). Nothing to say (a service without a
    # care memo) -> SendResult("skipped").
    render: bool = False
    facts: MessageFacts | None = None
    render_kind: str | None = None  # the template to render when not `kind` (a re-sent ask)
    # Never delivered after this moment (an ask: the confirmation deadline; anything before
    # the visit: its start): the activity answers "expired" instead of calling a provider.
    not_after: datetime | None = None


@dataclass
class VoiceCall:
    """Activity `place_voice_call` input: a robot call that gathers one digit (1 / 2)."""

    idempotency_key: str
    patient_id: str
    clinic_id: str
    prompt: str = ""
    subject_id: str | None = None
    workflow_id: str | None = None
    question: Question | None = None
    render: bool = False  # as OutboundMessage: the activity renders `voice_prompt`
    facts: MessageFacts | None = None
    not_after: datetime | None = None  # as OutboundMessage


@dataclass
class SendResult:
    # sent | opted_out | no_channel | failed | skipped (nothing to say, e.g. no memo) |
    # expired (its moment passed: not sent)
    status: str
    channel: str | None = None
    provider_message_id: str | None = None
    duplicate: bool = False  # the idempotency key was already used: nothing was sent again
    # send_appointment_message: the journey's row was written in the send's own transaction
    row_written: bool = False


# ------------------------------------------------------------------ e-mail
@dataclass
class Attachment:
    filename: str
    path: str  # a file under DATA_DIR (kept out of workflow history)
    content_type: str = "application/octet-stream"


@dataclass
class EmailRequest:
    """Generic e-mail: to addresses and/or every active staff member of some roles and/or
    some staff ids. `idempotency_key` (workflow id + step) makes a retried send a no-op."""

    idempotency_key: str
    subject: str
    body: str
    to: list[str] = field(default_factory=list)
    to_roles: list[str] = field(default_factory=list)
    to_user_ids: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    workflow_id: str | None = None


@dataclass
class EmailResult:
    status: str  # sent, already_sent, no_recipients, no_smtp
    recipients: int = 0


# ------------------------------------------------------------------ typed activity stubs
# Journeys call these by reference (`workflow.execute_activity_method(TaskActivityStubs.
# create_operator_task, ...)`): name, argument and result types come from here, and the
# implementations in activities/ subclass the stubs, so mypy checks that they match.
class TaskActivityStubs:
    @activity.defn(name="create_operator_task")
    async def create_operator_task(self, req: TaskRequest) -> TaskRef:
        raise NotImplementedError

    @activity.defn(name="cancel_operator_tasks")
    async def cancel_operator_tasks(self, req: CancelTasks) -> int:
        raise NotImplementedError


class MessagingActivityStubs:
    @activity.defn(name="send_patient_message")
    async def send_patient_message(self, msg: OutboundMessage) -> SendResult:
        raise NotImplementedError

    @activity.defn(name="place_voice_call")
    async def place_voice_call(self, call: VoiceCall) -> SendResult:
        raise NotImplementedError


class EmailActivityStubs:
    @activity.defn(name="send_email")
    async def send_email(self, req: EmailRequest) -> EmailResult:
        raise NotImplementedError
