"""One inbound path for every patient message: WhatsApp, Telegram, Twilio SMS/voice webhooks
and the sandbox all end in `route_inbound`.

1. **Dedup**: an inbound MessageLog row under the provider's own id (`in:whatsapp:<wamid>`,
   `in:telegram:<update_id>`, `in:sms:<MessageSid>`, `in:voice:<CallSid>:<status>`) is
   written first; a redelivery finds it and has no effect. A row left `received` by a
   crashed request is processed again after `STALE_CLAIM`.
2. **Sender**: by phone / Telegram chat id (or the patient id the sandbox names). Unknown ->
   operator task `unknown_sender`; logged without the number.
3. **Opt-out**: STOP words (carrier list incl. CANCEL, ru/uk) set `Patient.opted_out`;
   START/UNSTOP clear it. Never forwarded as an appointment reply.
4. **Target** (conversations.routing.pick_target): the subject a button/call/quoted message
   names; else the most recent open question whose expected answers match; else the
   nearest open appointment; a reply to an answered/expired question goes to a person.
5. **Signal** the journey that asked (`patient_reply`), close the question it answered, and
   return: webhooks do not wait on the journey. Nothing to signal (or the journey has
   ended) -> operator task `unread_message`, with the question as context when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.common import PatientReply
from contracts.replies import opt_word
from conversations.questions import answer as answer_question
from conversations.questions import expire as expire_questions
from conversations.questions import undelivered as question_undelivered
from conversations.routing import pick_target
from core import metrics
from core.db import insert_once
from core.logging import get_logger
from models.core import Channel, MessageLog, OperatorTask, Patient, utcnow

log = get_logger("conversations.inbound")

STALE_CLAIM = timedelta(seconds=10)
DEDUP_RETENTION = timedelta(days=30)  # providers redeliver for up to ~7 days
PURGE_EVERY = timedelta(hours=1)
_last_purge: datetime | None = None


@dataclass
class Inbound:
    channel: Channel
    source: str  # whatsapp, telegram, sms, voice, sandbox
    dedup_key: str
    kind: str  # text, button, digit, call_status
    phone: str | None = None
    telegram_chat_id: str | None = None
    patient_id: str | None = None  # the sender, when known without a lookup (sandbox, calls)
    text: str | None = None
    button_id: str | None = None
    digit: str | None = None
    call_status: str | None = None
    provider_message_id: str | None = None
    appointment_hint: str | None = None  # the appointment a voice call was about
    reply_to: str | None = None  # the provider id of our message this one quotes
    received_at: datetime = field(default_factory=utcnow)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Routed:
    # duplicate, unknown_sender, opted_out, opted_in, signalled, unread, recorded
    outcome: str
    appointment_id: str | None = None
    patient_id: str | None = None
    message_id: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    question_id: str | None = None
    task_id: str | None = None


async def raise_task(s: AsyncSession, dedup_key: str, kind: str, title: str, **kw: Any) -> tuple[OperatorTask, bool]:
    """Idempotent on dedup_key (a unique row), like the create_operator_task activity."""
    found = await insert_once(
        s, OperatorTask(dedup_key=dedup_key, kind=kind, title=title, **kw), OperatorTask.dedup_key, dedup_key
    )
    if found[1]:
        metrics.task_opened(kind)
    return found


class TemporalNotConnected(Exception):
    """The API has no Temporal connection yet: the delivery is retried later (503)."""


class InProgress(Exception):
    """Another delivery of this message is being processed right now: the provider should
    retry later (503), never be told "done" for work that may still fail."""


async def _claim(s: AsyncSession, msg: Inbound) -> MessageLog | None:
    """The dedup row, claimed for this delivery; None when the message was already processed.

    Only a processed message is a duplicate. A row still `received` is either being handled
    by a concurrent delivery (InProgress: retry later) or was left by a delivery that failed
    or crashed; once it is older than STALE_CLAIM it is taken over (an atomic compare-and-set
    on its timestamp, so two redeliveries cannot both take it). A failed delivery releases
    its claim at once (`_release`), so the provider's next retry is processed."""
    row = MessageLog(
        idempotency_key=msg.dedup_key,
        direction="in",
        channel=msg.channel,
        kind="call_status" if msg.kind == "call_status" else "reply",
        status="received",
        provider_message_id=msg.provider_message_id,
        body=msg.text if msg.text is not None else (msg.digit or msg.button_id),
        payload={
            "kind": msg.kind,
            "source": msg.source,
            "button_id": msg.button_id,
            "digit": msg.digit,
            "call_status": msg.call_status,
            **msg.extra,
        },
    )
    found, inserted = await insert_once(s, row, MessageLog.idempotency_key, msg.dedup_key)
    if inserted:
        return found
    if found.status != "received":
        return None
    touched = found.updated_at or found.created_at
    if utcnow() - touched < STALE_CLAIM:
        raise InProgress(msg.dedup_key)
    now = utcnow()
    res = await s.exec(
        update(MessageLog)
        .where(
            col(MessageLog.id) == found.id,
            col(MessageLog.status) == "received",
            func.coalesce(col(MessageLog.updated_at), col(MessageLog.created_at)) == touched,
        )
        .values(updated_at=now)
    )
    await s.commit()
    if res.rowcount != 1:
        raise InProgress(msg.dedup_key)
    await s.refresh(found)
    return found


async def _release(sessions: async_sessionmaker[AsyncSession], row_id: str) -> None:
    """Give up the claim of a delivery that failed: the next delivery processes it at once.
    Best effort - if the database is what failed, the claim goes stale after STALE_CLAIM."""
    try:
        async with sessions() as s:
            await s.exec(delete(MessageLog).where(col(MessageLog.id) == row_id, col(MessageLog.status) == "received"))
            await s.commit()
    except Exception as e:  # noqa: BLE001
        log.warning("inbound claim not released; it goes stale", error=type(e).__name__)


async def _senders(s: AsyncSession, msg: Inbound) -> list[Patient]:
    if msg.patient_id:
        p = await s.get(Patient, msg.patient_id)
        return [p] if p else []
    if msg.phone:
        q = select(Patient).where(Patient.phone == msg.phone)
    elif msg.telegram_chat_id:
        q = select(Patient).where(Patient.telegram_chat_id == msg.telegram_chat_id)
    else:
        return []
    # Oldest first: with a shared family number, the earliest record is usually the adult.
    return list((await s.exec(q.order_by(col(Patient.created_at)))).all())


async def _finish(s: AsyncSession, row: MessageLog, status: str, **kw: Any) -> None:
    row.status = status
    row.updated_at = utcnow()
    for k, v in kw.items():
        setattr(row, k, v)
    s.add(row)
    await s.commit()


async def route_inbound(sessions: async_sessionmaker[AsyncSession], temporal: Client | None, msg: Inbound) -> Routed:
    """Process one delivery. Raises (the webhook answers 503, the provider retries) when it
    could not be processed; the claim is released so that retry is not taken for a duplicate."""
    await _maybe_purge(sessions)
    row_id: str | None = None
    try:
        async with sessions() as s:
            row = await _claim(s, msg)
            if row is None:
                log.info("inbound duplicate ignored", channel=msg.channel.value, dedup_key=msg.dedup_key)
                return Routed("duplicate")
            row_id = row.id
            return await _process(s, temporal, msg, row)
    except BaseException:
        if row_id is not None:  # released once this session (and any lock it held) is closed
            await _release(sessions, row_id)
        raise


async def _process(s: AsyncSession, temporal: Client | None, msg: Inbound, row: MessageLog) -> Routed:
    senders = await _senders(s, msg)
    if not senders:
        await raise_task(
            s,
            f"unknown_sender:{msg.dedup_key}",
            "unknown_sender",
            f"Message from an unknown {msg.channel.value} sender",
            details={
                "channel": msg.channel.value,
                "from": msg.phone or msg.telegram_chat_id,
                "text": msg.text,
                "button_id": msg.button_id,
                "digit": msg.digit,
            },
        )
        await _finish(s, row, "unknown_sender")
        # The sender's number goes to the task (the DB), never to the log.
        log.warning("inbound from unknown sender", channel=msg.channel.value, dedup_key=msg.dedup_key)
        return Routed("unknown_sender", message_id=row.id)
    sender = senders[0]
    row.patient_id = sender.id

    if msg.kind == "text" and (word := opt_word(msg.text)):
        for p in senders:
            p.opted_out = word == "stop"
            p.opted_out_at = utcnow() if word == "stop" else None
            s.add(p)
        outcome = "opted_out" if word == "stop" else "opted_in"
        await _finish(s, row, outcome)
        log.info(
            "patient messaging preference changed", outcome=outcome, patient_id=sender.id, channel=msg.channel.value
        )
        return Routed(outcome, patient_id=sender.id, message_id=row.id)

    ids = [p.id for p in senders]
    # Reads only until the signal: the claim's new patient_id is written with the outcome, so
    # no write transaction (on SQLite: the database's one write lock) is held across the
    # routing reads and the signal's round trip to Temporal.
    with s.no_autoflush:
        children = (await s.exec(select(Patient.id).where(col(Patient.guardian_id).in_(ids)))).all()
        family = [*ids, *children]
        target = await pick_target(s, ids, family, msg)
    subject_type, subject_id = target.subject
    clinic_id = target.clinic_id or sender.clinic_id
    about = target.patient_id or sender.id
    question = target.question if target.how == "question" else None
    if (wf_id := target.workflow_id) is not None:
        reply = PatientReply(
            source=msg.source,
            kind=msg.kind,
            text=msg.text,
            button_id=msg.button_id,
            digit=msg.digit,
            call_status=msg.call_status,
            provider_message_id=msg.provider_message_id,
            received_at=msg.received_at,
            question_id=question.id if question else None,
            question_kind=question.kind if question else None,
            message_id=row.id,
            patient_id=question.patient_id if question else None,
        )
        if temporal is None:
            raise TemporalNotConnected()
        try:
            await temporal.get_workflow_handle(wf_id).signal(target.signal, reply)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise  # row stays `received`: the provider's retry processes it again
            log.info("journey not running; reply goes to an operator", workflow_id=wf_id)
            if question is not None:
                await expire_questions(s, question.subject_id, "the journey has ended")
                await s.commit()
        else:
            if question is not None and msg.kind != "call_status":
                await answer_question(s, question, row.id)
            await _finish(
                s,
                row,
                "signalled",
                subject_type=subject_type,
                subject_id=subject_id,
                about_patient_id=about,
                question_id=question.id if question else None,
                workflow_id=wf_id,
                clinic_id=clinic_id,
            )
            log.info(
                "patient reply signalled",
                channel=msg.channel.value,
                kind=msg.kind,
                routed_by=target.how + (" (named)" if target.named else ""),
                subject_type=subject_type,
                subject_id=subject_id,
                question_id=question.id if question else None,
                workflow_id=wf_id,
                patient_id=sender.id,
            )
            return Routed(
                "signalled",
                appointment_id=subject_id if subject_type == "appointment" else None,
                patient_id=sender.id,
                message_id=row.id,
                subject_type=subject_type,
                subject_id=subject_id,
                question_id=question.id if question else None,
            )
    if msg.kind == "call_status":  # a robot call nobody is waiting for any more
        await _finish(s, row, "recorded", subject_id=subject_id, subject_type=subject_type)
        return Routed("recorded", patient_id=sender.id, message_id=row.id)
    details: dict[str, Any] = {
        "channel": msg.channel.value,
        "text": msg.text,
        "button_id": msg.button_id,
        "digit": msg.digit,
        "call_status": msg.call_status,
        "message_log_id": row.id,
    }
    if target.how == "closed_question" and target.question is not None:
        # Answered or expired: never re-triggered; a person sees what it answered.
        details["question"] = target.question.context(utcnow())
        title = f"Patient replied to a question that is already {target.question.effective_state(utcnow())}"
    else:
        title = f"Unread {msg.channel.value} message from a patient"
    task, _ = await raise_task(
        s,
        f"unread_message:{msg.dedup_key}",
        "unread_message",
        title,
        patient_id=about,
        clinic_id=clinic_id,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details,
    )
    await _finish(
        s,
        row,
        "unread",
        clinic_id=clinic_id,
        subject_type=subject_type,
        subject_id=subject_id,
        about_patient_id=about,
        question_id=target.question.id if target.question else None,
        task_id=task.id,
    )
    log.info(
        "patient message for a person: operator task",
        channel=msg.channel.value,
        routed_by=target.how,
        patient_id=sender.id,
    )
    return Routed(
        "unread",
        patient_id=sender.id,
        message_id=row.id,
        subject_type=subject_type,
        subject_id=subject_id,
        question_id=target.question.id if target.question else None,
        task_id=task.id,
    )


# Provider statuses only ever move a sent message forward.
_STATUS_RANK = {"delivered": 3, "read": 4, "undelivered": 5, "failed": 5}
_CURRENT_RANK = {"sent": 2, "unconfirmed": 2, "delivered": 3, "read": 4, "undelivered": 5, "failed": 5}


async def record_status(
    sessions: async_sessionmaker[AsyncSession],
    provider_message_id: str,
    status: str,
    error: str | None = None,
    temporal: Client | None = None,
) -> bool:
    """A delivery receipt (WhatsApp statuses, Twilio MessageStatus). Idempotent. A question
    reported failed/undelivered moves its journey to the next channel (`delivery_failed`);
    the signal goes out before the status is stored, so a failed signal is retried with the
    provider's redelivery."""
    rank = _STATUS_RANK.get(status)
    if rank is None:
        return False
    async with sessions() as s:
        rows = (
            await s.exec(
                select(MessageLog).where(
                    MessageLog.provider_message_id == provider_message_id, MessageLog.direction == "out"
                )
            )
        ).all()
        changed = False
        for row in rows:
            if rank > _CURRENT_RANK.get(row.status, 0):
                if status in ("failed", "undelivered"):
                    await question_undelivered(s, temporal, row, status)
                row.status = status
                row.updated_at = utcnow()
                if error:
                    row.error = error[:1000]
                s.add(row)
                changed = True
        await s.commit()
    return changed


async def purge_dedup_rows(sessions: async_sessionmaker[AsyncSession], older_than: timedelta = DEDUP_RETENTION) -> int:
    """Inbound robot-call status rows past every provider's redelivery horizon. The
    patient's own messages stay: they are the conversation staff read
    (`GET /v1/patients/{id}/conversation`)."""
    async with sessions() as s:
        res = await s.exec(
            delete(MessageLog).where(
                col(MessageLog.direction) == "in",
                col(MessageLog.kind) == "call_status",
                col(MessageLog.created_at) < utcnow() - older_than,
            )
        )
        await s.commit()
        return int(res.rowcount or 0)


async def _maybe_purge(sessions: async_sessionmaker[AsyncSession]) -> None:
    global _last_purge
    now = utcnow()
    if _last_purge is not None and now - _last_purge < PURGE_EVERY:
        return
    _last_purge = now
    try:
        n = await purge_dedup_rows(sessions)
        if n:
            log.info("old inbound dedup rows purged", rows=n)
    except Exception as e:  # noqa: BLE001 - housekeeping must never fail a webhook
        log.warning("dedup purge failed", error=type(e).__name__)
