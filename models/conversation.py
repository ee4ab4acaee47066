"""Open questions: every automated message that expects an answer (an appointment's ask and
re-asks, the robot call, the NPS survey, a plan's lab-results question, and any later kind).

A row is written by the send activity once the message is out (`OutboundMessage.question`),
under the message's own idempotency key, so a retried send records it once. Inbound routing
(conversations.routing) reads them to decide which journey a reply answers; an answer closes
the question (and the re-asks of the same question); a journey moving on (reschedule, cancel,
a plan leaving its stage) expires it; `open_until` bounds it in time.

States: open -> answered | expired | undelivered. A question past `open_until` counts as
expired whatever its state column says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.core import TZ, new_id, utcnow

QUESTION_STATES = ("open", "answered", "expired", "undelivered")


class OpenQuestion(SQLModel, table=True):
    __tablename__ = "open_question"
    __table_args__ = (UniqueConstraint("message_key", name="uq_open_question_message_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    message_key: str = Field(max_length=255)  # the asking message's idempotency key
    message_id: str | None = Field(default=None, max_length=32)  # its message_log row
    kind: str = Field(max_length=64)  # confirmation, voice_confirmation, survey, lab_results...
    state: str = Field(default="open", index=True, max_length=16)
    patient_id: str = Field(index=True, max_length=32)  # whom it is about (the child)
    recipient_id: str = Field(index=True, max_length=32)  # who was asked (the guardian)
    clinic_id: str | None = Field(default=None, max_length=32)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(index=True, max_length=64)
    subject_version: int | None = None
    subject_state: str | None = Field(default=None, max_length=64)
    workflow_id: str = Field(max_length=255)
    signal: str = Field(max_length=64)
    answers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channel: str | None = Field(default=None, max_length=16)
    asked_at: datetime = TZ(nullable=False, default=utcnow, index=True)
    open_until: datetime | None = TZ(nullable=True)
    closed_at: datetime | None = TZ(nullable=True)
    closed_reason: str | None = Field(default=None, max_length=200)
    answer_message_id: str | None = Field(default=None, max_length=32)

    def is_open(self, now: datetime) -> bool:
        return self.state == "open" and (self.open_until is None or self.open_until > now)

    def effective_state(self, now: datetime) -> str:
        return "expired" if self.state == "open" and not self.is_open(now) else self.state

    def context(self, now: datetime) -> dict[str, Any]:
        """What a person needs to answer a reply to this question (task details)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.effective_state(now),
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "asked_at": self.asked_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_reason": self.closed_reason,
        }
