"""Staff answer patients: a free-text message on the patient's channel, through the same
send path as the journeys (conversations/delivery.py: message log row first, opt-out, channel
order, a child's messages to the guardian, the sandbox when no provider is configured).

Refused before anything is written (StaffSendRefused -> 409, saying why):
* the patient (or the guardian who receives a child's messages) opted out (STOP);
* no channel reaches them (no phone / Telegram chat, or no provider for it);
* the channel is WhatsApp, the patient has not written within the 24-hour window, and the
  clinic has no approved reply template (`whatsapp_reply_template`) to send it in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import select
from temporalio.exceptions import ApplicationError

from conversations.delivery import WHATSAPP_WINDOW, Delivery
from models.core import Channel, Clinic, MessageLog, Patient


class StaffSendRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # opted_out, no_channel, whatsapp_window_closed
        self.message = message


class ProviderDown(Exception):
    """The provider is unavailable (5xx, 429, network): try again later (same key)."""


@dataclass
class StaffMessage:
    patient_id: str
    text: str
    sent_by: str
    subject_type: str | None = None
    subject_id: str | None = None
    task_id: str | None = None  # the unread_message task this answers
    idempotency_key: str | None = None


async def send_staff_message(messaging: Delivery, m: StaffMessage) -> MessageLog:
    async with messaging.deps.sessions() as s:
        patient = await s.get(Patient, m.patient_id)
        if patient is None:
            raise LookupError(f"patient {m.patient_id} not found")
        guardian = await s.get(Patient, patient.guardian_id) if patient.guardian_id else None
        clinic = await s.get(Clinic, patient.clinic_id) if patient.clinic_id else None
        if m.idempotency_key:
            key = f"staff:{m.sent_by}:{m.idempotency_key}"
            done = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == key))).first()
            if done is not None and done.status not in ("pending", "sending"):
                return done  # the same request again: the first answer
        else:
            key = f"staff:{m.sent_by}:{uuid.uuid4().hex}"
    recipient = guardian or patient
    who = "the guardian who receives this child's messages" if guardian else "the patient"
    if patient.opted_out or recipient.opted_out:
        raise StaffSendRefused(
            "opted_out", f"{who} opted out of messages (STOP); they must write START first, or call them"
        )
    channels = messaging.channels_for(recipient, voice=False)
    if not channels:
        raise StaffSendRefused("no_channel", f"no messaging channel reaches {who} (no phone or Telegram chat)")
    template = None
    if channels[0] == Channel.whatsapp and not await messaging.whatsapp_window_open(recipient.id):
        template = clinic.whatsapp_reply_template if clinic else None
        if not template:
            last = await messaging.last_whatsapp_in(recipient.id)
            since = (
                f"they last wrote on WhatsApp at {last.isoformat(timespec='minutes')}"
                if last
                else "they have never written on WhatsApp"
            )
            raise StaffSendRefused(
                "whatsapp_window_closed",
                f"outside WhatsApp's 24-hour window ({since}); free text is allowed only within "
                f"{int(WHATSAPP_WINDOW.total_seconds() // 3600)} hours of the patient's last message and the clinic "
                "has no approved reply template (clinic.whatsapp_reply_template): call the patient instead",
            )
    try:
        await messaging._deliver(
            key=key,
            patient_id=patient.id,
            clinic_id=patient.clinic_id or (clinic.id if clinic else ""),
            kind="staff_message",
            text=m.text,
            subject_id=m.subject_id,
            workflow_id=None,
            buttons=[],
            template=template,
            voice=False,
            sent_by=m.sent_by,
            task_id=m.task_id,
            subject_type=m.subject_type,
        )
    except ApplicationError as e:
        raise ProviderDown(str(e)) from e
    async with messaging.deps.sessions() as s:
        row = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == key))).one()
    return row
