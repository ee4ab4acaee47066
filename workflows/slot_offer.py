"""The slot-offer journey (issue 12, the waiting list): one workflow per freed slot.

    freed slot ─▶ wave 1: ask up to `wave_size` matching waitlisted patients ("yes" / "no")
        │ no taker after `wave_interval` (or everyone asked said no) ─▶ next wave …
        ├─ first "yes" ─▶ book it (same doctor-slot lock as POST /v1/appointments) ─▶ booked
        │      later "yes" answers ─▶ "sorry, it is taken" (they stay on the list)
        ├─ `stop_before` the slot's start ─▶ too_close
        └─ nobody left to ask ─▶ exhausted + a task for the front desk

Answers arrive as `patient_reply` signals through the normal reply routing (the offer is an
open question of each patient asked). The signal only queues a "yes"; the loop books one
answer at a time, so two answers at the same instant cannot both get the slot (and the
booking's doctor lock and one-booking-per-offer key hold even against the desk). Sends run
beside the loop (they never hold the wave timer or the stop time) and are never delivered
after the offer's stop time. Patient texts are templates rendered by the messaging activity.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from contracts.appointment import clinic_zone
    from contracts.common import (
        ANSWER_YES_NO,
        PATIENT_REPLY_SIGNAL,
        Button,
        MessageFacts,
        MessagingActivityStubs,
        OutboundMessage,
        PatientReply,
        Question,
        SendResult,
        TaskActivityStubs,
        TaskRequest,
        button_id,
        parse_button_id,
    )
    from contracts.replies import classify
    from contracts.waitlist import (
        OFFER_TEXT,
        SKIP_BUTTON,
        SLOT_OFFER_QUESTION,
        SLOT_OFFER_STATE_QUERY,
        SLOT_OFFER_SUBJECT,
        SLOT_OFFER_WORKFLOW,
        TAKE_BUTTON,
        TAKEN_TEXT,
        UNFILLED_TASK,
        BookRequest,
        Candidate,
        CandidatesRequest,
        OfferClosed,
        SlotOfferInput,
        SlotOfferSnapshot,
        WaitlistActivityStubs,
    )
    from models.quiet_hours import next_send_time

SEND_TIMEOUT = timedelta(seconds=30)
SEND_HEARTBEAT = timedelta(seconds=5)
DB_TIMEOUT = timedelta(seconds=20)
BOOK_TIMEOUT = timedelta(seconds=30)  # a row under the doctor's lock + the journey's start
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["Invalid", "NotFound", "Conflict"],
)
UNREACHED = ("opted_out", "no_channel", "failed", "expired", "skipped")


@workflow.defn(name=SLOT_OFFER_WORKFLOW)
class SlotOfferJourney:
    @workflow.init
    def __init__(self, inp: SlotOfferInput) -> None:
        self.inp = inp
        self.wid = workflow.info().workflow_id
        self.state = "open"
        self.entries: dict[str, str] = {}  # patient asked -> their waitlist entry
        self.services: dict[str, Candidate] = {}
        self.declined: list[str] = []  # said no, or could not be reached
        self.waiting_yes: list[str] = []  # said yes, in the order the answers arrived
        self.told_taken: list[str] = []
        self.booked_patient: str | None = None
        self.booked_appointment: str | None = None
        self.waves = 0
        self.last_wave_at: datetime | None = None
        self.held_until: datetime | None = None  # a due wave waiting out the quiet hours
        self._seen: list[str] = []
        self._changes = 0
        self._sends: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------- main loop
    @workflow.run
    async def run(self, inp: SlotOfferInput) -> SlotOfferSnapshot:
        close_at = self._close_at()
        while True:
            now = workflow.now()
            if self.waiting_yes:  # one answer at a time: the first "yes" gets the slot
                patient = self.waiting_yes.pop(0)
                if self.state == "open" and now >= close_at:
                    await self._close("too_close")
                if self.state == "open":
                    await self._book(patient)
                if self.state in ("booked", "taken") and patient != self.booked_patient:
                    self._tell_taken(patient)
                continue
            if self.state == "open":
                if now >= close_at:
                    await self._close("too_close")
                    break
                if self._wave_due(now):
                    # Never in the clinic's quiet hours, unless their end is past the stop time.
                    self.held_until = next_send_time(now, inp.policy.quiet_hours, self._tz(), critical_by=close_at)
                    if self.held_until <= now:
                        self.held_until = None
                        if not await self._wave():
                            await self._close("exhausted")
                            await self._unfilled_task()
                            break
                        continue
                    wake = self.held_until
                else:
                    wake = min(close_at, self._next_wave_at())
            elif now >= close_at:
                break
            else:  # booked or taken: late "yes" answers still hear that it is taken
                wake = close_at
            seen = self._changes
            try:
                await workflow.wait_condition(partial(self._woken, seen), timeout=wake - now)
            except TimeoutError:
                pass
        if self._sends:  # each is bounded by the moment its message stops making sense
            await asyncio.gather(*self._sends)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    def _woken(self, seen: int) -> bool:
        return self._changes != seen

    def _tz(self) -> tzinfo:
        return clinic_zone(self.inp.policy.timezone)

    def _close_at(self) -> datetime:
        return self.inp.starts_at - self.inp.policy.stop_before_td

    def _next_wave_at(self) -> datetime:
        assert self.last_wave_at is not None
        return self.last_wave_at + self.inp.policy.wave_interval_td

    def _wave_due(self, now: datetime) -> bool:
        if self.last_wave_at is None or now >= self._next_wave_at():
            return True
        # Everyone asked so far said no (or cannot be reached): the next wave now.
        answered = set(self.declined)
        return all(p in answered for p in self.entries)

    # ---------------------------------------------------------------- steps
    async def _wave(self) -> bool:
        """Ask the next patients on the list; False when nobody is left to ask."""
        found: list[Candidate] = await workflow.execute_activity_method(
            WaitlistActivityStubs.waitlist_candidates,
            CandidatesRequest(
                offer_id=self.inp.offer_id,
                exclude_entries=list(self.entries.values()),
                exclude_patients=list(self.entries),
                limit=self.inp.policy.wave_size,
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=RETRY,
        )
        if not found:
            return False
        self.waves += 1
        self.last_wave_at = workflow.now()
        for c in found:
            self.entries[c.patient_id] = c.entry_id
            self.services[c.patient_id] = c
            self._sends.append(asyncio.create_task(self._offer(c)))
        return True

    async def _offer(self, c: Candidate) -> None:
        offer_id = self.inp.offer_id
        result = await self._send(
            OutboundMessage(
                idempotency_key=f"{self.wid}:offer:{c.patient_id}",
                patient_id=c.patient_id,
                clinic_id=self.inp.clinic_id,
                kind=OFFER_TEXT,
                subject_id=offer_id,
                workflow_id=self.wid,
                buttons=[
                    Button(id=button_id("confirm", offer_id), title="", title_kind=TAKE_BUTTON),
                    Button(id=button_id("decline", offer_id), title="", title_kind=SKIP_BUTTON),
                ],
                question=Question(
                    kind=SLOT_OFFER_QUESTION,
                    subject_type=SLOT_OFFER_SUBJECT,
                    subject_id=offer_id,
                    answers=[ANSWER_YES_NO],
                    open_until=self._close_at(),
                ),
                render=True,
                facts=self._facts(c),
                not_after=self._close_at(),
            )
        )
        if result.status in UNREACHED and c.patient_id not in self.declined:
            self.declined.append(c.patient_id)  # nobody to wait for: the next wave may go
            self._changes += 1

    def _tell_taken(self, patient: str) -> None:
        if patient in self.told_taken:
            return
        self.told_taken.append(patient)
        c = self.services.get(patient)
        self._sends.append(
            asyncio.create_task(
                self._send_taken(
                    OutboundMessage(
                        idempotency_key=f"{self.wid}:taken:{patient}",
                        patient_id=patient,
                        clinic_id=self.inp.clinic_id,
                        kind=TAKEN_TEXT,
                        subject_id=self.inp.offer_id,
                        workflow_id=self.wid,
                        render=True,
                        facts=self._facts(c),
                        not_after=self.inp.starts_at,
                    )
                )
            )
        )

    async def _send_taken(self, msg: OutboundMessage) -> None:
        await self._send(msg)

    async def _book(self, patient: str) -> None:
        result = await workflow.execute_activity_method(
            WaitlistActivityStubs.book_from_waitlist,
            BookRequest(offer_id=self.inp.offer_id, entry_id=self.entries[patient], patient_id=patient),
            start_to_close_timeout=BOOK_TIMEOUT,
            retry_policy=RETRY,
        )
        if result.status == "booked":
            self.booked_patient, self.booked_appointment = patient, result.appointment_id
            await self._close("booked")
        elif result.status == "taken":  # the desk booked the slot meanwhile
            await self._close("taken")
        elif result.status == "too_late":
            await self._close("too_close")
        # "gone": this patient left the list meanwhile; the offer stays open for the others

    async def _close(self, state: str) -> None:
        self.state = state
        await workflow.execute_activity_method(
            WaitlistActivityStubs.close_slot_offer,
            OfferClosed(
                offer_id=self.inp.offer_id,
                state=state,
                offered=len(self.entries),
                # Booked/taken: late answers still come here ("sorry, taken"); otherwise
                # nobody waits for them any more and a reply goes to a person.
                expire_questions=state not in ("booked", "taken"),
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _unfilled_task(self) -> None:
        await workflow.execute_activity_method(
            TaskActivityStubs.create_operator_task,
            TaskRequest(
                dedup_key=f"{self.wid}:unfilled",
                kind=UNFILLED_TASK,
                title="A freed slot: nobody on the waiting list took it; fill it by phone",
                assigned_role="operator",
                clinic_id=self.inp.clinic_id,
                subject_type=SLOT_OFFER_SUBJECT,
                subject_id=self.inp.offer_id,
                workflow_id=self.wid,
                details={
                    "doctor_id": self.inp.doctor_id,
                    "starts_at": self.inp.starts_at.isoformat(),
                    "duration_minutes": self.inp.duration_minutes,
                    "offered": len(self.entries),
                    "waves": self.waves,
                },
            ),
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=RETRY,
        )

    # ---------------------------------------------------------------- answers
    @workflow.signal(name=PATIENT_REPLY_SIGNAL)
    def patient_reply(self, reply: PatientReply) -> None:
        if reply.provider_message_id:
            if reply.provider_message_id in self._seen:
                return  # a provider redelivery
            self._seen = [*self._seen[-99:], reply.provider_message_id]
        patient = reply.patient_id
        if patient is None or patient not in self.entries:
            return
        meaning = self._meaning(reply)
        if meaning == "confirm":
            if patient not in self.waiting_yes and patient != self.booked_patient:
                if patient in self.declined:
                    self.declined.remove(patient)  # changed their mind
                self.waiting_yes.append(patient)
        elif meaning == "decline" and patient not in self.declined:
            self.declined.append(patient)
        self._changes += 1

    def _meaning(self, reply: PatientReply) -> str:
        if reply.kind == "button" and reply.button_id:
            parsed = parse_button_id(reply.button_id)
            if parsed and parsed[0] in ("confirm", "decline"):
                return parsed[0]
        if reply.kind == "digit":
            return {"1": "confirm", "2": "decline"}.get((reply.digit or "").strip(), "other")
        return classify(reply.text)

    # ---------------------------------------------------------------- query
    @workflow.query(name=SLOT_OFFER_STATE_QUERY)
    def view(self) -> SlotOfferSnapshot:
        return SlotOfferSnapshot(
            offer_id=self.inp.offer_id,
            state=self.state,
            offered=list(self.entries),
            declined=list(self.declined),
            waiting_yes=list(self.waiting_yes),
            booked_patient_id=self.booked_patient,
            booked_appointment_id=self.booked_appointment,
            told_taken=list(self.told_taken),
            waves=self.waves,
            next_wave_at=self.held_until,
        )

    # ---------------------------------------------------------------- helpers
    def _facts(self, c: Candidate | None) -> MessageFacts:
        return MessageFacts(
            doctor_id=self.inp.doctor_id,
            starts_at=self.inp.starts_at,
            duration_minutes=(c.duration_minutes if c else None) or self.inp.duration_minutes,
            service=c.service if c else None,
            service_code=c.service_code if c else None,
        )

    async def _send(self, msg: OutboundMessage) -> SendResult:
        """A send bounded by `msg.not_after`: out of time is "expired" (nothing went out); a
        send refused for good is "failed" (the offer goes on without this patient)."""
        assert msg.not_after is not None
        left = msg.not_after - workflow.now()
        if left <= timedelta(0):
            return SendResult("expired")
        opts: dict[str, Any] = {
            "start_to_close_timeout": SEND_TIMEOUT,
            "heartbeat_timeout": SEND_HEARTBEAT,
            "schedule_to_close_timeout": max(left, timedelta(seconds=1)),
            "retry_policy": RETRY,
        }
        try:
            result: SendResult = await workflow.execute_activity_method(
                MessagingActivityStubs.send_patient_message, msg, **opts
            )
        except ActivityError as e:
            timed_out = isinstance(e.cause, TemporalTimeoutError) and e.cause.type == TimeoutType.SCHEDULE_TO_CLOSE
            if timed_out or e.retry_state == RetryState.TIMEOUT:
                return SendResult("expired")
            workflow.logger.warning("slot offer send failed for good: %s", type(e.cause).__name__)
            return SendResult("failed")
        return result


__all__ = ["SlotOfferJourney"]
