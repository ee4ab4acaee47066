"""The delivery walk: one message (or call) to one patient over their channels. Used by the
messaging activities (activities/messaging.py: the journeys' sends, rendered from templates)
and by staff messages (conversations/staff.py, from the API) alike.

Exactly-once is impossible over providers without idempotency keys, so every send is
*at most once* per idempotency key, enforced by the MessageLog row written first:

    pending  --(about to call the provider)-->  sending  --(provider said ok)-->  sent
       ^                                           |
       +----(provider said no / never reached)-----+

* key unknown            -> write the row (`pending`), then send.
* row `sent`             -> duplicate: return the first result, send nothing.
* row `pending`          -> an earlier attempt stopped before calling the provider (or the
                            provider refused / was unreachable): send now.
* row `sending`          -> an earlier attempt died *while* the provider call was in flight
                            (worker killed, timeout, lost answer). WhatsApp, Telegram and
                            Twilio offer no idempotency key on send, so we cannot ask "did it
                            arrive?". We do NOT resend: the row becomes `unconfirmed` and the
                            result reports `sent`. Trade-off: in that narrow window a message
                            may be lost (the journey's re-asks and voice call cover it); it is
                            never duplicated.

Channel order: the patient's messenger (preferred_channel) then SMS; a voice call only by
`place_voice_call`. A child's messages go to the guardian. Opted-out patients get nothing.
Provider 4xx (not 429) moves on to the next channel; 5xx/429/network errors are retried by
Temporal (a retryable ApplicationError).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from contracts.common import (
    Button,
    Question,
    SendResult,
)
from conversations.questions import open_question, question_row
from core import metrics
from core.db import insert_once
from core.deps import Deps
from core.logging import get_logger
from models.conversation import OpenQuestion
from models.core import Channel, MessageLog, Patient
from providers import ProviderPaced, ProviderRejected, ProviderUnavailable, Sent
from providers.pacing import PACER, Pace, max_wait
from providers.sandbox import SandboxClient
from providers.telegram import TelegramClient
from providers.twilio import TwilioClient
from providers.whatsapp import WhatsAppClient

log = get_logger("conversations.delivery")

# A write that belongs with "the message went out" (a journey's row after the send): run in
# the transaction that records the send, before its commit; True if it wrote.
OnSent = Callable[[AsyncSession], Awaitable[bool]]

WHATSAPP_WINDOW = timedelta(hours=24)
# Leave a margin: a message queued at 23:59:59 would land outside the window.
WINDOW_MARGIN = timedelta(minutes=5)
DONE_SENT = ("sent", "delivered", "read", "unconfirmed")
DONE_OTHER = ("opted_out", "no_channel", "failed", "expired")


class _Overtaken(Exception):
    """Another attempt of the same send took its row first."""


class Delivery:
    """The walk and its provider clients, built with the worker's (or the API's) deps."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        s = deps.settings
        self.whatsapp = WhatsAppClient(s, deps.http)
        self.telegram = TelegramClient(s, deps.http)
        self.twilio = TwilioClient(s, deps.http)
        self.sandbox = SandboxClient()

    # ------------------------------------------------------------------ planning
    def _pace(self, channel: Channel) -> Pace | None:
        """The sender a send on this channel is paced as (None: the sandbox is not paced)."""
        if self.deps.settings.sandbox_providers:
            return None
        if channel == Channel.whatsapp:
            return self.whatsapp.pace()
        if channel == Channel.telegram:
            return self.telegram.pace()
        return self.twilio.pace("Calls" if channel == Channel.voice else "Messages")

    def channels_for(self, recipient: Patient, voice: bool) -> list[Channel]:
        sandbox = self.deps.settings.sandbox_providers
        if voice:
            ok = recipient.phone and (sandbox or self.twilio.configured)
            return [Channel.voice] if ok else []
        order: list[Channel] = []
        pref = recipient.preferred_channel
        if pref == Channel.whatsapp and recipient.phone and (sandbox or self.whatsapp.configured):
            order.append(Channel.whatsapp)
        if pref == Channel.telegram and recipient.telegram_chat_id and (sandbox or self.telegram.configured):
            order.append(Channel.telegram)
        if recipient.phone and (sandbox or self.twilio.configured):
            order.append(Channel.sms)
        return order

    async def whatsapp_window_open(self, recipient_id: str) -> bool:
        """The patient wrote to us on WhatsApp within the last 24 hours."""
        last = await self.last_whatsapp_in(recipient_id)
        return last is not None and datetime.now(UTC) - last < WHATSAPP_WINDOW - WINDOW_MARGIN

    async def last_whatsapp_in(self, recipient_id: str) -> datetime | None:
        """When the patient last wrote to us on WhatsApp (None: never)."""
        async with self.deps.sessions() as s:
            q = (
                select(MessageLog.created_at)
                .where(
                    MessageLog.patient_id == recipient_id,
                    MessageLog.direction == "in",
                    MessageLog.channel == Channel.whatsapp,
                )
                .order_by(col(MessageLog.created_at).desc())
                .limit(1)
            )
            last = (await s.exec(q)).first()
        return last.astimezone(UTC) if last else None

    # ------------------------------------------------------------------ the send
    async def _claim(self, row: MessageLog) -> tuple[MessageLog, bool]:
        """Insert the row under its unique key, or return the row an earlier attempt wrote
        (and whether this call inserted it)."""
        async with self.deps.sessions() as s:
            return await insert_once(s, row, MessageLog.idempotency_key, row.idempotency_key)

    async def _save(self, row: MessageLog, on_sent: OnSent | None = None, **changes: object) -> bool:
        """The row's changes in one commit, with `on_sent`'s write when given (its result)."""
        for k, v in changes.items():
            setattr(row, k, v)
        row.updated_at = datetime.now(UTC)
        async with self.deps.sessions() as s:
            s.add(row)
            written = await on_sent(s) if on_sent is not None else False
            await s.commit()
        return written

    async def _deliver(self, people: tuple[Patient, Patient | None] | None = None, **kw: Any) -> SendResult:
        """`people`: the patient and guardian rows the caller just read (composing the text),
        so the walk does not read them again."""
        try:
            return await self._deliver_once(people=people, **kw)
        except _Overtaken:
            # Another attempt of this very send moved the row on first (Temporal started this
            # one while that one still ran, e.g. on a worker too starved to heartbeat): this
            # attempt goes by the row's state now (sent / unconfirmed / ...), sending nothing
            # unless the row is `pending` again.
            return await self._deliver_once(**kw)

    async def _take(self, row: MessageLog, channel: Channel) -> None:
        """pending -> sending, only if the row is still `pending` (compare-and-set): of two
        attempts of one send running at once, exactly one calls the provider."""
        now = datetime.now(UTC)
        async with self.deps.sessions() as s:
            res = await s.exec(
                update(MessageLog)
                .where(col(MessageLog.id) == row.id, col(MessageLog.status) == "pending")
                .values(status="sending", channel=channel, updated_at=now)
            )
            await s.commit()
        if res.rowcount != 1:
            raise _Overtaken(row.idempotency_key)
        # What the database now holds (so a later _save of this object writes its changes).
        for name, value in (("status", "sending"), ("channel", channel), ("updated_at", now)):
            set_committed_value(row, name, value)

    async def _deliver_once(
        self,
        *,
        key: str,
        patient_id: str,
        clinic_id: str,
        kind: str,
        text: str,
        subject_id: str | None,
        workflow_id: str | None,
        buttons: list[Button],
        template: str | None,
        voice: bool,
        question: Question | None = None,
        exclude: list[str] | None = None,
        sent_by: str | None = None,
        task_id: str | None = None,
        subject_type: str | None = None,
        template_language: str | None = None,
        language: str | None = None,
        not_after: datetime | None = None,
        people: tuple[Patient, Patient | None] | None = None,
        on_sent: OnSent | None = None,
    ) -> SendResult:
        """`on_sent`: written in the commit that records this attempt's delivery (only then:
        not for a send an earlier attempt made, nor for any other outcome)."""
        patient: Patient | None
        guardian: Patient | None
        if people is not None and people[0].id == patient_id:
            patient, guardian = people
        else:
            async with self.deps.sessions() as s:
                patient = await s.get(Patient, patient_id)
                guardian = None
                if patient is not None and patient.guardian_id:
                    guardian = await s.get(Patient, patient.guardian_id)
        if patient is None:
            raise ApplicationError(f"patient {patient_id} not found", type="NotFound", non_retryable=True)
        recipient = guardian or patient
        planned = [c for c in self.channels_for(recipient, voice) if c.value not in (exclude or [])]
        # A first attempt with nothing in its way (a channel, not opted out, still in its
        # moment) writes its row `sending` at once: durable before the provider call as the
        # ledger requires, in one commit instead of two (`pending`, then `sending`). A row an
        # earlier attempt wrote goes the long way below (its pending -> sending compare-and-set).
        ready = bool(planned) and not (patient.opted_out or recipient.opted_out)
        ready = ready and (not_after is None or datetime.now(UTC) < not_after)
        if ready and (limit := max_wait()) is not None and (pace := self._pace(planned[0])) is not None:
            if (wait := PACER.wait_for(pace)) > limit:
                # An attempt that may not wait (a journey's first, inside its workflow task) and
                # would: it writes nothing and leaves the message to a queued attempt.
                log.info("paced: handed to a queued attempt", channel=planned[0].value, wait_s=round(wait, 2))
                raise ApplicationError(f"paced: {pace.key} next slot in {wait:.2f} s", type="ProviderPaced")
        row, inserted = await self._claim(
            MessageLog(
                idempotency_key=key,
                direction="out",
                channel=planned[0] if planned else (Channel.voice if voice else recipient.preferred_channel),
                kind=kind,
                status="sending" if ready else "pending",
                patient_id=patient.id,
                recipient_id=recipient.id,
                clinic_id=clinic_id,
                subject_id=subject_id,
                subject_type=question.subject_type if question else subject_type,
                about_patient_id=patient.id,
                workflow_id=workflow_id,
                sent_by=sent_by,
                task_id=task_id,
                body=text,
                payload={
                    "buttons": [asdict(b) for b in buttons],
                    "template": template,
                    "template_language": template_language,
                    "language": language,
                    "attempts": [],
                    "excluded": list(exclude or []),
                },
            )
        )
        ctx = {"idempotency_key": key, "kind": kind, "subject_id": subject_id}
        if row.status in DONE_SENT:
            if question is not None:  # the attempt that sent it may have died before this
                await self._open_question(question, row, patient, recipient)
            return SendResult("sent", row.channel.value, row.provider_message_id, duplicate=True)
        if row.status in DONE_OTHER:
            return SendResult(row.status, row.channel.value, None, duplicate=True)
        if row.status == "sending" and not inserted:
            # An earlier attempt died mid-call: at most once, do not resend (module docstring).
            await self._save(row, status="unconfirmed", error="attempt lost during the provider call; not resent")
            if question is not None:
                await self._open_question(question, row, patient, recipient)
            log.warning("send outcome unknown; not resending", channel=row.channel.value, **ctx)
            return SendResult("sent", row.channel.value, row.provider_message_id, duplicate=True)

        if patient.opted_out or recipient.opted_out:
            await self._save(row, status="opted_out")
            log.info("not sent: patient opted out", **ctx)
            return SendResult("opted_out")

        failed = {a["channel"] for a in row.payload.get("attempts", [])}
        todo = [c for c in planned if c.value not in failed]
        if not todo:
            status = "failed" if failed else "no_channel"
            await self._save(row, status=status)
            metrics.message_failed(row.channel if failed else None, kind, "undeliverable")
            log.warning("message not sent", status=status, **ctx)
            return SendResult(status)

        taken = inserted and row.status == "sending"  # this attempt wrote it so, for todo[0]
        for channel in todo:
            if taken:
                taken = False
            else:
                if not_after is not None and datetime.now(UTC) >= not_after:
                    # Its moment has passed (an ask after the deadline, a reminder after the
                    # visit started): a retry that comes late, e.g. after a worker died, sends
                    # nothing.
                    await self._save(row, status="expired")
                    log.info("not sent: its moment has passed", **ctx)
                    return SendResult("expired")
                await self._take(row, channel)
            try:
                sent = await self._call(channel, recipient, row, buttons, template, template_language)
            except ProviderRejected as e:
                attempts = [
                    *row.payload.get("attempts", []),
                    {"channel": channel.value, "status": e.status, "error": str(e)[:300]},
                ]
                await self._save(
                    row, status="pending", payload={**row.payload, "attempts": attempts}, error=str(e)[:1000]
                )
                metrics.message_failed(channel, kind, "refused")
                log.warning(
                    "provider refused; trying the next channel", channel=channel.value, http_status=e.status, **ctx
                )
                continue
            except ProviderPaced as e:
                # An attempt that may not wait (the journey's first, inside its workflow task):
                # nothing went out; the queued attempt that follows takes the row from here.
                await self._save(row, status="pending")
                log.info("paced: handed to a queued attempt", channel=channel.value, wait_s=e.retry_after, **ctx)
                raise ApplicationError(str(e), type="ProviderPaced") from e
            except ProviderUnavailable as e:
                if not e.maybe_sent:
                    await self._save(row, status="pending", error=str(e)[:1000])
                metrics.message_failed(channel, kind, "unavailable")
                log.warning(
                    "provider unavailable; will retry",
                    channel=channel.value,
                    http_status=e.status,
                    maybe_sent=e.maybe_sent,
                    **ctx,
                )
                # After a 429, retry when the provider says (+ jitter), not on the retry
                # policy's short first interval: a burst must not turn into a retry storm.
                delay = timedelta(seconds=e.retry_after * (1 + random.random() / 5)) if e.retry_after else None
                raise ApplicationError(str(e), type="ProviderUnavailable", next_retry_delay=delay) from e
            written = await self._mark_sent(
                row,
                question,
                patient,
                recipient,
                status="sent",
                provider_message_id=sent.provider_message_id,
                payload={**row.payload, **sent.raw},
                error=None,
                fresh=inserted,
                on_sent=on_sent,
            )
            metrics.message_sent(channel, kind)
            log.info(
                "message sent",
                channel=channel.value,
                provider_message_id=sent.provider_message_id,
                recipient_is_guardian=recipient.id != patient.id,
                **ctx,
            )
            return SendResult("sent", channel.value, sent.provider_message_id, row_written=written)

        await self._save(row, status="failed")
        metrics.message_failed(row.channel, kind, "undeliverable")
        log.warning("message not sent: every channel refused", **ctx)
        return SendResult("failed", row.channel.value)

    async def _mark_sent(
        self,
        row: MessageLog,
        q: Question | None,
        patient: Patient,
        recipient: Patient,
        fresh: bool = False,
        on_sent: OnSent | None = None,
        **changes: object,
    ) -> bool:
        """The provider took it: the row's outcome, the question it asks (if any) and
        `on_sent`'s write in one transaction (one commit instead of three on the path every ask
        takes); returns whether `on_sent` wrote. `fresh`: this attempt wrote the row, so no
        earlier one recorded the question (nothing to look up; one recorded meanwhile by a
        concurrent attempt is found through the unique key below)."""
        if q is None:
            return await self._save(row, on_sent, **changes)
        async with self.deps.sessions() as s:
            asked = select(OpenQuestion).where(OpenQuestion.message_key == row.idempotency_key)
            found = None if fresh else (await s.exec(asked)).first()
            if found is None:
                found = question_row(q, row, patient_id=patient.id, recipient_id=recipient.id)
                s.add(found)
            for k, v in {**changes, "question_id": found.id, "updated_at": datetime.now(UTC)}.items():
                setattr(row, k, v)
            s.add(row)
            try:
                await s.flush()  # the question's unique key first, then the write beside it
                written = await on_sent(s) if on_sent is not None else False
                await s.commit()
                return written
            except IntegrityError:  # another attempt recorded the question a moment ago
                await s.rollback()
            await s.refresh(row)
            found = (await s.exec(asked)).one()
            for k, v in {**changes, "question_id": found.id, "updated_at": datetime.now(UTC)}.items():
                setattr(row, k, v)
            s.add(row)
            written = await on_sent(s) if on_sent is not None else False
            await s.commit()
            return written

    async def _open_question(self, q: Question, row: MessageLog, patient: Patient, recipient: Patient) -> None:
        async with self.deps.sessions() as s:
            found = await open_question(s, q, row, patient_id=patient.id, recipient_id=recipient.id)
        if row.question_id != found.id:
            await self._save(row, question_id=found.id)

    async def _call(
        self,
        channel: Channel,
        recipient: Patient,
        row: MessageLog,
        buttons: list[Button],
        template: str | None,
        template_language: str | None = None,
    ) -> Sent:
        text = row.body or ""
        if self.deps.settings.sandbox_providers:
            return await self.sandbox.send(channel.value)
        if channel == Channel.whatsapp:
            assert recipient.phone
            in_window = await self.whatsapp_window_open(recipient.id)
            return await self.whatsapp.send(recipient.phone, text, buttons, template, in_window, template_language)
        if channel == Channel.telegram:
            assert recipient.telegram_chat_id
            return await self.telegram.send(recipient.telegram_chat_id, text, buttons)
        assert recipient.phone
        if channel == Channel.voice:
            return await self.twilio.place_call(recipient.phone, row.id)
        return await self.twilio.send_sms(recipient.phone, text)
