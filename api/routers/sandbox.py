"""The sandbox provider's window (only when no provider credentials are set; 404 otherwise).

GET  /v1/sandbox/messages  - what the journeys "sent" (and what the sandbox patient replied).
POST /v1/sandbox/reply     - answer as the patient: {patient_id, text} | {patient_id, digit}
                             | {patient_id, button_id}. Goes through the same inbound routing
                             as the real webhooks (dedup, opt-out, routing, signal).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, model_validator
from sqlmodel import col, or_, select

from api import policy
from api.deps import SessionDep
from conversations.inbound import Inbound, route_inbound
from models.core import Channel, MessageLog, StaffUser


def _sandbox_only(request: Request) -> None:
    if not request.app.state.settings.sandbox_providers:
        raise HTTPException(404, "Not Found")


router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"], dependencies=[Depends(_sandbox_only)])
Reader = Annotated[StaffUser, policy.may("sandbox", "read")]
Replier = Annotated[StaffUser, policy.may("sandbox", "reply")]


class SandboxMessage(BaseModel):
    id: str
    direction: str
    channel: str
    kind: str
    status: str
    patient_id: str | None
    recipient_id: str | None
    subject_id: str | None
    text: str | None
    buttons: list[dict[str, Any]]
    provider_message_id: str | None
    created_at: datetime


class SandboxReply(BaseModel):
    patient_id: str = Field(min_length=1, max_length=32)
    text: str | None = Field(None, max_length=4096)
    digit: str | None = Field(None, pattern=r"^[0-9*#]$")
    button_id: str | None = Field(None, max_length=256)
    message_id: str | None = Field(None, max_length=64, description="optional: the same id twice has one effect")
    reply_to: str | None = Field(
        None, max_length=255, description="optional: the provider_message_id of the message this reply quotes"
    )

    @model_validator(mode="after")
    def _one_answer(self) -> SandboxReply:
        given = [k for k in ("text", "digit", "button_id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, digit or button_id")
        return self


class SandboxReplyResult(BaseModel):
    outcome: str  # signalled, unread, opted_out, opted_in, duplicate
    appointment_id: str | None
    message_id: str | None
    subject_type: str | None = None  # what the reply was routed to (appointment, treatment_plan)
    subject_id: str | None = None
    question_id: str | None = None  # the open question it answered (or, unread: the closed one)
    task_id: str | None = None  # unread: the operator task it raised


def _public(row: MessageLog) -> SandboxMessage:
    return SandboxMessage(
        id=row.id,
        direction=row.direction,
        channel=row.channel.value,
        kind=row.kind,
        status=row.status,
        patient_id=row.patient_id,
        recipient_id=row.recipient_id,
        subject_id=row.subject_id,
        text=row.body,
        buttons=row.payload.get("buttons") or [],
        provider_message_id=row.provider_message_id,
        created_at=row.created_at,
    )


@router.get("/messages", response_model=list[SandboxMessage])
async def sandbox_messages(
    session: SessionDep,
    user: Reader,
    patient_id: str | None = None,
    subject_id: str | None = None,
    direction: str | None = Query(None, pattern="^(in|out)$"),
    limit: int = Query(100, ge=1, le=500),
) -> list[SandboxMessage]:
    q = select(MessageLog)
    if (cond := policy.clinic_filter(user, MessageLog.clinic_id)) is not None:
        q = q.where(cond)
    if patient_id:
        q = q.where(or_(MessageLog.patient_id == patient_id, MessageLog.recipient_id == patient_id))
    if subject_id:
        q = q.where(MessageLog.subject_id == subject_id)
    if direction:
        q = q.where(MessageLog.direction == direction)
    q = q.order_by(col(MessageLog.created_at).desc()).limit(limit)
    rows = (await session.exec(q)).all()
    return [_public(r) for r in reversed(rows)]


@router.post("/reply", response_model=SandboxReplyResult)
async def sandbox_reply(body: SandboxReply, request: Request, session: SessionDep, user: Replier) -> SandboxReplyResult:
    patient = await policy.patient_visible(session, user, body.patient_id)
    if patient is None:
        raise policy.not_found("patient", body.patient_id)
    # Messages about a child went to the guardian, so the guardian is who answers.
    sender_id = patient.guardian_id or patient.id
    last_out = (
        await session.exec(
            select(MessageLog)
            .where(MessageLog.recipient_id == sender_id, MessageLog.direction == "out")
            .where(MessageLog.channel == Channel.voice if body.digit else MessageLog.channel != Channel.voice)
            .order_by(col(MessageLog.created_at).desc())
            .limit(1)
        )
    ).first()
    if body.digit:
        channel, kind = Channel.voice, "digit"
    else:
        channel = (
            last_out.channel
            if last_out
            else (patient.preferred_channel if patient.preferred_channel != Channel.voice else Channel.sms)
        )
        kind = "button" if body.button_id else "text"
    result = await route_inbound(
        request.app.state.sessions,
        request.app.state.temporal,
        Inbound(
            channel=channel,
            source="sandbox",
            dedup_key=f"in:sandbox:{body.message_id or uuid.uuid4().hex}",
            kind=kind,
            patient_id=sender_id,
            text=body.text,
            digit=body.digit,
            button_id=body.button_id,
            appointment_hint=last_out.subject_id if (body.digit and last_out) else None,
            reply_to=body.reply_to,
        ),
    )
    return SandboxReplyResult(
        outcome=result.outcome,
        appointment_id=result.appointment_id,
        message_id=result.message_id,
        subject_type=result.subject_type,
        subject_id=result.subject_id,
        question_id=result.question_id,
        task_id=result.task_id,
    )
