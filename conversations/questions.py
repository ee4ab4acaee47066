"""Open questions: recorded by the send activity, answered by routing, expired when the
journey moves on (see models.conversation)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.common import DELIVERY_FAILED_SIGNAL, DeliveryFailure, Question
from core.db import insert_once
from core.logging import get_logger
from models.conversation import OpenQuestion
from models.core import MessageLog, utcnow

log = get_logger("conversations.questions")


async def open_question(
    s: AsyncSession, q: Question, row: MessageLog, *, patient_id: str, recipient_id: str
) -> OpenQuestion:
    """Record the question `row` asked (idempotent on the message's key). Commits."""
    found, _ = await insert_once(
        s,
        question_row(q, row, patient_id=patient_id, recipient_id=recipient_id),
        OpenQuestion.message_key,
        row.idempotency_key,
    )
    return found


def question_row(q: Question, row: MessageLog, *, patient_id: str, recipient_id: str) -> OpenQuestion:
    """The open question `row` asks (not yet added to any session)."""
    assert row.workflow_id, "a question needs the journey that waits for its answer"
    return OpenQuestion(
        message_key=row.idempotency_key,
        message_id=row.id,
        kind=q.kind,
        patient_id=patient_id,
        recipient_id=recipient_id,
        clinic_id=row.clinic_id,
        subject_type=q.subject_type,
        subject_id=q.subject_id,
        subject_version=q.subject_version,
        subject_state=q.subject_state,
        workflow_id=row.workflow_id,
        signal=q.signal,
        answers=list(q.answers),
        channel=row.channel.value,
        open_until=q.open_until,
    )


async def answer(s: AsyncSession, q: OpenQuestion, message_id: str | None, now: datetime | None = None) -> None:
    """Close `q` and its still-open siblings (the re-asks of the same question). The caller
    commits."""
    now = now or utcnow()
    siblings = await s.exec(
        select(OpenQuestion).where(
            OpenQuestion.workflow_id == q.workflow_id,
            OpenQuestion.subject_id == q.subject_id,
            OpenQuestion.kind == q.kind,
            # Re-asks went to the same patient; a question asked of several patients at once
            # (a waiting-list slot offer) stays open for the others.
            OpenQuestion.patient_id == q.patient_id,
            OpenQuestion.state == "open",
        )
    )
    by_id = {q.id: q, **{o.id: o for o in siblings.all()}}
    for other in by_id.values():
        if other.state != "open":
            continue
        other.state, other.closed_at = "answered", now
        other.closed_reason = "answered" if other.id == q.id else "an earlier or later ask was answered"
        other.answer_message_id = message_id
        s.add(other)


async def expire(
    s: AsyncSession,
    subject_id: str,
    reason: str,
    *,
    kinds: Sequence[str] | None = None,
    older_version_than: int | None = None,
    state_not: str | None = None,
) -> int:
    """Expire a subject's open questions the journey no longer waits for. The caller commits."""
    q = select(OpenQuestion).where(OpenQuestion.subject_id == subject_id, OpenQuestion.state == "open")
    if kinds is not None:
        q = q.where(col(OpenQuestion.kind).in_(list(kinds)))
    rows = (await s.exec(q)).all()
    now, n = utcnow(), 0
    for r in rows:
        if older_version_than is not None and (r.subject_version is None or r.subject_version >= older_version_than):
            continue
        if state_not is not None and (r.subject_state is None or r.subject_state == state_not):
            continue
        r.state, r.closed_at, r.closed_reason = "expired", now, reason[:200]
        s.add(r)
        n += 1
    return n


async def undelivered(s: AsyncSession, temporal: Client | None, row: MessageLog, status: str) -> bool:
    """`row` asked a question and the provider says it never arrived: tell the journey
    (`delivery_failed`, naming every channel tried so far) so it asks on the next channel,
    and close this copy of the question. The caller commits. True if a journey was told."""
    if row.question_id is None or not row.workflow_id:
        return False
    q = await s.get(OpenQuestion, row.question_id)
    if q is None or not q.is_open(utcnow()):
        return False  # answered meanwhile, or moot
    tried = [*row.payload.get("excluded", []), *(a["channel"] for a in row.payload.get("attempts", []))]
    tried = list(dict.fromkeys([*tried, row.channel.value]))
    if temporal is None:
        raise RuntimeError("Temporal is not connected yet")
    try:
        await temporal.get_workflow_handle(row.workflow_id).signal(
            DELIVERY_FAILED_SIGNAL,
            DeliveryFailure(
                question_id=q.id,
                question_kind=q.kind,
                message_key=row.idempotency_key,
                failed_channels=tried,
                status=status,
            ),
        )
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        told = False
    else:
        told = True
    q.state, q.closed_at, q.closed_reason = "undelivered", utcnow(), f"{row.channel.value} {status}"
    s.add(q)
    log.info(
        "question undelivered; journey told",
        question_id=q.id,
        channel=row.channel.value,
        status=status,
        workflow_id=row.workflow_id,
        told=told,
    )
    return told
