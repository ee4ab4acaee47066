"""Messages to patients as activities: `send_patient_message` and `place_voice_call` render
the clinic's template for the journey's kind (core/texts) and hand the text to the delivery
walk (conversations/delivery.py: at most once per key, channel order, opt-out, guardians),
heartbeating while they run.

A journey may run `send_patient_message` as a local activity first, inside its workflow task
(workflows/appointment.py SENDS_LOCAL_FIRST). That attempt never waits on a provider's pacing
for longer than LOCAL_PACE_WAIT: a later slot fails it at once with nothing sent, and the
journey hands the same message (same key) to a queued attempt that waits its turn."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from contracts.common import Button, MessageFacts, MessagingActivityStubs, OutboundMessage, SendResult, VoiceCall
from conversations.delivery import DONE_OTHER, DONE_SENT, WHATSAPP_WINDOW, Delivery, OnSent
from core.texts.compose import Composed, compose
from providers.pacing import waiting_at_most

# Seconds a send run inside a workflow task may wait for its sender's pacing slot.
LOCAL_PACE_WAIT = 1.0

__all__ = ["DONE_OTHER", "DONE_SENT", "WHATSAPP_WINDOW", "MessagingActivities", "heartbeating"]


class MessagingActivities(Delivery, MessagingActivityStubs):
    # ------------------------------------------------------------------ activities
    @activity.defn(name="send_patient_message")
    async def send_patient_message(self, msg: OutboundMessage) -> SendResult:
        return await self.send(msg)

    async def send(self, msg: OutboundMessage, on_sent: OnSent | None = None) -> SendResult:
        """`send_patient_message`'s body (also `send_appointment_message`'s, with `on_sent`
        written in the commit that records the delivery: conversations.delivery)."""
        if activity.in_activity() and activity.info().is_local:
            with waiting_at_most(LOCAL_PACE_WAIT):
                return await self._send_message(msg, on_sent)
        async with heartbeating():
            return await self._send_message(msg, on_sent)

    async def _send_message(self, msg: OutboundMessage, on_sent: OnSent | None = None) -> SendResult:
        text, buttons, template, template_language = msg.text, list(msg.buttons), msg.template, None
        language, people = None, None
        if msg.render:
            kind = msg.render_kind or msg.kind
            composed = await self._compose(msg.clinic_id, msg.patient_id, kind, msg.facts, buttons)
            if composed is None:
                return SendResult("skipped")
            text, buttons = composed.text, composed.buttons
            template, template_language = composed.whatsapp_template, composed.whatsapp_template_language
            language = composed.language
            people = (composed.patient, composed.guardian) if composed.patient is not None else None
        return await self._deliver(
            people=people,
            key=msg.idempotency_key,
            patient_id=msg.patient_id,
            clinic_id=msg.clinic_id,
            kind=msg.kind,
            text=text,
            subject_id=msg.subject_id,
            workflow_id=msg.workflow_id,
            buttons=buttons,
            template=template,
            template_language=template_language,
            language=language,
            voice=False,
            question=msg.question,
            exclude=list(msg.exclude_channels),
            not_after=msg.not_after,
            on_sent=on_sent,
        )

    @activity.defn(name="place_voice_call")
    async def place_voice_call(self, call: VoiceCall) -> SendResult:
        async with heartbeating():
            return await self._place_call(call)

    async def _place_call(self, call: VoiceCall) -> SendResult:
        text, language, people = call.prompt, None, None
        if call.render:
            composed = await self._compose(call.clinic_id, call.patient_id, "voice_prompt", call.facts, [])
            if composed is None:
                return SendResult("skipped")
            text, language = composed.text, composed.language
            people = (composed.patient, composed.guardian) if composed.patient is not None else None
        return await self._deliver(
            people=people,
            key=call.idempotency_key,
            patient_id=call.patient_id,
            clinic_id=call.clinic_id,
            kind="voice_call",
            text=text,
            subject_id=call.subject_id,
            workflow_id=call.workflow_id,
            buttons=[],
            template=None,
            language=language,
            voice=True,
            question=call.question,
            not_after=call.not_after,
        )

    async def _compose(
        self, clinic_id: str, patient_id: str, kind: str, facts: MessageFacts | None, buttons: list[Button]
    ) -> Composed | None:
        """Render the clinic's template (core/texts) for this kind, subject and recipient."""
        async with self.deps.sessions() as s:
            try:
                return await compose(s, self.deps.settings, clinic_id, patient_id, kind, facts, buttons)
            except LookupError as e:
                raise ApplicationError(str(e), type="NotFound", non_retryable=True) from None
