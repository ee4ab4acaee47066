"""The appointment journey (SPEC §3): one workflow per appointment, from booking to feedback.

    booked ──ask / re-asks / voice call──▶ confirmed ──check-in──▶ checked_in ──▶ finished
      │  └─ "no" ─▶ needs_clarification (+ task)              (end of visit / doctor says so)
      └─ deadline without an answer ─▶ needs_clarification (+ task)
    start + grace, not confirmed (or required check-in missing) ─▶ no_show (+ task)
    cancel (any time before the visit) ─▶ cancelled
    finished ─▶ after-care memo ─▶ NPS survey ─▶ review link / thanks / director task ─▶ end

One main loop recomputes "what is due next" from the state each time something changes
(a reply, an update, a timer). Reschedule only changes the state (new time, version + 1);
the loop re-plans, and every send's idempotency key carries the version, so nothing planned
for the old time can go out.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo
from functools import partial
from types import MappingProxyType
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from contracts.appointment import (
        APPOINTMENT_CANCEL_SIGNAL,
        APPOINTMENT_REPLY_SIGNAL,
        APPOINTMENT_STATE_QUERY,
        APPOINTMENT_WORKFLOW,
        BEFORE_VISIT,
        AppointmentActivityStubs,
        AppointmentInput,
        AppointmentOutcome,
        AppointmentSend,
        AppointmentSnapshot,
        CancelRequest,
        ContextRequest,
        HistoryEntry,
        JourneyState,
        RescheduleRequest,
        StaffAction,
        clinic_zone,
    )
    from contracts.common import (
        ANSWER_DIGIT,
        ANSWER_SCORE,
        ANSWER_YES_NO,
        DELIVERY_FAILED_SIGNAL,
        Button,
        CancelTasks,
        DeliveryFailure,
        MessageFacts,
        MessagingActivityStubs,
        OutboundMessage,
        PatientReply,
        Question,
        SendResult,
        TaskActivityStubs,
        TaskRequest,
        VoiceCall,
        button_id,
        parse_button_id,
    )
    from contracts.replies import classify, feedback_word, parse_score
    from core.search_attributes import APPOINTMENT_STAGE, APPOINTMENT_START, CLINIC_ID
    from workflows import planner

# ------------------------------------------------------------------ stages and rules
TERMINAL = ("no_show", "cancelled")  # "finished" still runs the after-visit part
CAN = MappingProxyType(
    {  # which update fits which stage
        "reschedule": BEFORE_VISIT,
        "cancel": BEFORE_VISIT,
        "confirm": ("booked", "needs_clarification"),
        "check_in": BEFORE_VISIT,
        "finish": ("checked_in", "confirmed"),
        "no_show": BEFORE_VISIT,
    }
)
HISTORY_LIMIT = 300  # entries kept in state (the oldest are dropped beyond this)

# Patient texts are templates rendered by the messaging activity (core/texts): the journey
# only says "send kind K about this visit". Journeys whose care-memo step ran before that
# decided by these English keywords whether a memo went out; their histories replay with it.
CATALOGUE_MEMOS = "care-memo-from-catalogue"
# Issue 16: a send never holds a timer (it runs beside the loop, bounded by the moment its
# message stops making sense), and the remaining contacts are fitted before the deadline.
SEND_RACES_TIMERS = "send-races-timers"
CONTACTS_FITTED = "contacts-fitted-before-deadline"
# Issue 16 (chaos run): news that arrives while the loop writes the row is written at once;
# an ask due while the booking notice is still on its way goes out beside it.
RESYNC_CHANGES = "resync-changes-during-sync"
ASK_BESIDE_NOTICE = "ask-beside-notice"
UNSTARTED_SEND_EXPIRES = "unstarted-send-expires"
FEEDBACK_WORDS = "survey-like-dislike"
# Issue 14: the journey's own database steps (loading its context, mirroring its state into
# the `appointment` row) run as local activities: in the worker, inside the workflow task,
# with no task-queue round trip and no full snapshot written into the history as an input.
DB_STEPS_LOCAL = "db-steps-local"
# A handler that queued effects while the journey was about to continue-as-new: the loop runs
# them first (they were lost with the old run before).
EFFECTS_BEFORE_CAN = "effects-before-continue-as-new"
# Issue 14: the booking wrote the row as the journey starts (stage booked, history [booked]);
# when the booking notice is due at once, the journey's first row write waits for it and
# carries `notice_sent` (one write instead of two). Any other news is written at once.
FIRST_SYNC_WITH_NOTICE = "first-sync-with-notice"
# Issue 14: the row write that follows a patient's reply runs as a task-queue activity, so the
# workflow task that took the reply completes at once and a query (the API's GET) sees the
# new state without waiting for the write (a local activity holds the task open until done).
REPLY_SHOWN_BEFORE_SYNC = "reply-shown-before-sync"
# Issue 14: a message's first attempt runs as a local activity, inside the workflow task that
# decided to send it, when nothing else is due for LOCAL_SEND_WINDOW: no task-queue round trip
# and no second workflow task per send (a booking notice or an ask is then one workflow task
# instead of two, and a journey evicted from the worker's cache meanwhile is not rebuilt for
# the send's result). The attempt never waits on a provider's pacing (activities/messaging.py)
# and is bounded by LOCAL_SEND_TIMEOUT, so it ends before anything else falls due: a send still
# never holds a timer. If it fails for any reason, the same message (same key: sent at most
# once) goes to a queued activity beside the loop, with its retries, as before.
SENDS_LOCAL_FIRST = "sends-local-first"
# Issue 14: an ask sent inside the workflow task (SENDS_LOCAL_FIRST) carries the row as it will
# be once the ask is out (asks_sent + 1, the `ask_sent` entry), written in the transaction that
# records the send, only onto the row the journey last wrote (its journey_revision). The journey
# then takes that very state and has nothing left to write: one transaction and one local
# activity per ask instead of two. Anything that changed meanwhile: recorded and written as before.
ROW_WITH_ASK = "row-with-ask"
# Issue 14: the booking notice likewise, when nothing but the booking has happened: the row the
# booking wrote (journey_revision 0) stands for the journey's first state, so the notice carries
# the journey's row with its `notice_sent` entry onto exactly that row (a row the API moved,
# cancelled or never wrote is left alone: the journey writes its own as before).
ROW_WITH_NOTICE = "row-with-notice"
LEGACY_MEMO_KEYWORDS = (
    "implant",
    "extraction",
    "anaesthesia",
    "sedation",
    "whitening",
    "hygiene",
    "filling",
    "root canal",
)

# Activities: named, explicit timeouts, bounded retries; business errors are non-retryable.
SEND_TIMEOUT = timedelta(seconds=30)
# Every task-queue activity of the journey heartbeats (activities/heartbeat.py): a worker that
# dies mid-activity is noticed in seconds, not after its start-to-close, and the activity (all
# are idempotent) is retried on a live worker. The loop awaits its DB steps and task writes
# before planning the next timer: a killed worker held a journey for DB_TIMEOUT in the chaos
# run (issue 16). (DB steps run as local activities since DB_STEPS_LOCAL: a dead worker's
# workflow task times out and another worker runs them again.)
HEARTBEAT = timedelta(seconds=5)
SEND_HEARTBEAT = HEARTBEAT
DB_TIMEOUT = timedelta(seconds=20)
# SENDS_LOCAL_FIRST: the in-task attempt's bound (queueing for a local-activity slot, the
# template, the row, and the provider's HTTP call, whose client gives up after 10 s), and how
# far off the next timer (and the message's own `not_after`) must be for the attempt to run.
LOCAL_SEND_TIMEOUT = timedelta(seconds=15)
LOCAL_SEND_WINDOW = timedelta(seconds=20)
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["Invalid", "NotFound", "Conflict"],
)


# Payload dataclasses live in contracts/appointment.py (passed through the sandbox,
# so their datetime fields convert).


# ------------------------------------------------------------------ the workflow
@workflow.defn(name=APPOINTMENT_WORKFLOW)
class AppointmentJourney:
    @workflow.init
    def __init__(self, inp: AppointmentInput) -> None:
        self.inp = inp
        self.p = inp.policy
        self.wid = workflow.info().workflow_id
        if inp.carried is not None:
            self.s = inp.carried
        else:
            self.s = JourneyState(version=inp.version, starts_at=inp.starts_at, duration_minutes=inp.duration_minutes)
            self.s.version_booked_at = self._booked_at()
            self._record("booked")
        self._changes = 0  # bumped by every signal/update: wakes the main loop
        # Side effects the handlers asked for (tasks to open or close, a resend), in order; the
        # main loop runs them (see "handlers" below for why a handler never awaits one).
        self._effects: list[Callable[[], Awaitable[None]]] = []
        self._inflight: asyncio.Task[None] | None = None  # a send running beside the loop
        # The booking/reschedule notice's own slot (ASK_BESIDE_NOTICE): when it started.
        self._notice: asyncio.Task[None] | None = None
        self._notice_since: datetime | None = None
        self._step_error: Exception | None = None
        self._replied = False  # a reply changed the state since the last row write

    # ---------------------------------------------------------------- main loop
    @workflow.run
    async def run(self, inp: AppointmentInput) -> AppointmentOutcome:
        if inp.carried is None:
            self._upsert_search_attributes(start=True)
        if self.s.context is None:
            self.s.context = await self._db_step(
                AppointmentActivityStubs.load_appointment_context,
                ContextRequest(inp.appointment_id, inp.clinic_id, inp.doctor_id),
            )
        while not self._ended():
            if self._step_error is not None:
                raise self._step_error
            before = self._changes
            await self._drain_effects()
            if not self._first_sync_waits_for_notice():
                await self._sync()
            if self._changes != before and workflow.patched(RESYNC_CHANGES):
                # News (a reply, an update, a send's outcome) arrived while the row was being
                # written: write it too before waiting, not at the next timer.
                continue
            now = workflow.now()
            due, step = self._next_step(now)
            if step is not None and due is not None and due <= now:
                if step in self._send_steps() and workflow.patched(SEND_RACES_TIMERS):
                    # The send runs beside the loop: the deadline, the no-show and the visit's
                    # end fire on time whatever the provider is doing.
                    if step == self._send_notice and workflow.patched(ASK_BESIDE_NOTICE):
                        # In its own slot: a notice still on its way does not hold the ask.
                        self._notice_since = now
                        self._notice = asyncio.create_task(self._beside(step, notice=True))
                    else:
                        self._inflight = asyncio.create_task(self._beside(step))
                    continue
                await step()
                continue
            if self._history_too_long() and not self._sending():
                # A chatty patient or many reschedules: start a fresh run with the same state,
                # once every handler has finished and everything they asked for has run.
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._drain_effects()
                await self._sync()
                late = bool(self._effects) or not workflow.all_handlers_finished()
                if late and workflow.patched(EFFECTS_BEFORE_CAN):
                    continue  # a handler ran during the sync: its effects first
                workflow.continue_as_new(dataclasses.replace(self.inp, carried=self.s))
            seen = self._changes
            timeout = (due - now) if due is not None else None
            try:
                await workflow.wait_condition(partial(self._woken, seen), timeout=timeout)
            except TimeoutError:
                pass
        if self._sending():  # bounded by the moment it stops making sense
            await workflow.wait_condition(lambda: not self._sending())
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain_effects()
        await self._sync()
        return AppointmentOutcome(
            appointment_id=inp.appointment_id, stage=self.s.stage, nps=self.s.nps, reason=self.s.cancel_reason
        )

    def _first_sync_waits_for_notice(self) -> bool:
        """Nothing has happened since the booking but the notice, which is due now or on its
        way: the row the booking wrote is still true, so its first write waits for the notice
        (FIRST_SYNC_WITH_NOTICE)."""
        if not self._only_booked() or self._effects:
            return False
        if self._notice is None:
            now = workflow.now()
            due, step = self._next_step(now)
            if step != self._send_notice or due is None or due > now:
                return False
        return workflow.patched(FIRST_SYNC_WITH_NOTICE)

    def _woken(self, seen: int) -> bool:
        return self._changes != seen or bool(self._effects)

    def _send_steps(self) -> tuple[Any, ...]:
        return (self._send_notice, self._ask, self._voice_call)

    def _sending(self) -> bool:
        return self._inflight is not None or self._notice is not None

    async def _beside(self, step: Any, notice: bool = False) -> None:
        try:
            await step()
        except Exception as e:  # raised by the loop, as if the step had run in it
            self._step_error = e
        finally:
            if notice:
                self._notice, self._notice_since = None, None
            else:
                self._inflight = None
            self._changes += 1  # the loop re-plans with the send's outcome

    def _history_too_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or (info.get_current_history_length() > self.p.max_history_events)

    def _ended(self) -> bool:
        return self.s.stage in TERMINAL or (self.s.stage == "finished" and self.s.closed)

    def _plan(self, now: datetime) -> planner.Planned | None:
        s = self.s
        return planner.next_step(
            s,
            self.p,
            now,
            self._booked_at(),
            self._tz(),
            sending=self._inflight is not None,
            notice_since=self._notice_since,
            fitted=s.asks_sent > 0 and not s.channel_dead and workflow.patched(CONTACTS_FITTED),
        )

    def _next_step(self, now: datetime) -> tuple[datetime | None, Callable[[], Awaitable[None]] | None]:
        """The earliest due step (workflows/planner.py decides): (when, what to run)."""
        s = self.s
        planned = self._plan(now)
        if s.stage == "booked" and s.unfitted_version != s.version and s.asks_sent > 0:
            unfitted = planner.unfitted_contacts(s, self.p)
            if unfitted and workflow.patched(CONTACTS_FITTED):
                s.unfitted_version = s.version  # recorded once per version, never silent
                self._record(f"contacts_unfitted_{unfitted}")
        if planned is None:
            return None, None
        due, step = planned
        run: dict[planner.Step, Callable[[], Awaitable[None]]] = {
            "notice": self._send_notice,
            "ask": self._ask,
            "voice_call": self._voice_call,
            "deadline": self._deadline_passed,
            "no_show": self._no_show,
            "visit_over": self._visit_over,
            "post_memo": self._send_post_memo,
            "survey": self._send_survey,
            "answer_feedback": self._answer_feedback,
            "survey_timeout": self._survey_timed_out,
        }
        return due, run[step]

    # ---------------------------------------------------------------- steps
    async def _send_notice(self) -> None:
        s = self.s
        first = s.version == self.inp.version
        s.notice_version = s.version
        event = "notice_sent" if first else "reschedule_notice_sent"
        then = self._row_after_notice(event) if first else None
        result = await self._send(
            "booking_notice" if first else "reschedule_notice", "notice", not_after=self._start(), then=then
        )
        if not self._took_row(then, result):
            self._record(event)

    def _row_after_notice(self, event: str) -> tuple[AppointmentSnapshot, int] | None:
        """ROW_WITH_NOTICE: (the row once the booking notice is out, 0: the booking's row),
        when nothing but the booking has happened and no run of the journey has written it."""
        if not self._only_booked() or not workflow.patched(ROW_WITH_NOTICE):
            return None
        return self._row_after(event), 0

    def _only_booked(self) -> bool:
        """Nothing but the booking has happened and no run of the journey has written its row:
        the row the booking committed still holds the journey's state."""
        s = self.s
        return self.inp.carried is None and s.synced_revision == 0 and s.revision == 1

    def _row_after_ask(self, event: str) -> tuple[AppointmentSnapshot, int] | None:
        """ROW_WITH_ASK: (the row as it will be once this ask is out, the revision the row
        shows now), for the send to write beside its own record, when the row holds everything
        the journey knows (nothing left to write) and the journey is from after the patch."""
        s = self.s
        if s.synced_revision != s.revision or not workflow.patched(ROW_WITH_ASK):
            return None
        return self._row_after(event, asks=1), s.revision

    def _row_after(self, event: str, asks: int = 0) -> AppointmentSnapshot:
        """The journey's row as it will be once `event` is recorded (its next revision)."""
        s = self.s
        row = self.view()
        row.asks_sent += asks
        row.history = [*row.history, HistoryEntry(at=workflow.now(), event=event, stage=s.stage)][-HISTORY_LIMIT:]
        row.journey_revision = s.revision + 1
        return row

    def _took_row(self, then: tuple[AppointmentSnapshot, int] | None, result: SendResult) -> bool:
        """The send wrote `then`'s row with its record and nothing changed while it was out:
        the journey takes that very entry, and the row holds everything it knows."""
        s = self.s
        if then is None or result.status != "sent" or not result.row_written:
            return False
        if then[0].journey_revision != s.revision + 1:
            return False  # news meanwhile: recorded after it, and written by the loop
        self._add(then[0].history[-1])
        s.synced_revision = s.revision
        return True

    def _ask_message(self) -> tuple[list[Button], Question]:
        buttons = [  # titles in the patient's language come from templates button.confirm/decline
            Button(id=button_id("confirm", self.inp.appointment_id), title=""),
            Button(id=button_id("decline", self.inp.appointment_id), title=""),
        ]
        return buttons, self._question("confirmation", [ANSWER_YES_NO], self._start())

    def _question(self, kind: str, answers: list[str], open_until: datetime) -> Question:
        return Question(
            kind=kind,
            subject_type="appointment",
            subject_id=self.inp.appointment_id,
            answers=answers,
            open_until=open_until,
            subject_version=self.s.version,
        )

    async def _ask(self) -> None:
        s = self.s
        first = s.asks_sent == 0
        buttons, question = self._ask_message()
        step = "ask" if first else f"reask-{s.asks_sent}"
        version = s.version
        event = "ask_sent" if first else "reask_sent"
        then = self._row_after_ask(event)
        result = await self._send(
            "reminder" if first else "reask", step, buttons, question=question, not_after=self._deadline(), then=then
        )
        if s.version != version:
            return  # rescheduled meanwhile: this ask was about the old time
        s.last_contact_at = workflow.now()
        if result.status == "expired":  # the deadline came first: the operator takes over
            self._record("ask_expired")
        elif result.status == "sent":
            s.asks_sent += 1
            if not self._took_row(then, result):
                self._record(event)
        elif result.status == "opted_out":
            s.opted_out = True
            self._record("opted_out")
        else:  # no_channel / failed for good: try the phone at once
            s.channel_dead = True
            self._record(f"ask_{result.status}")

    async def _voice_call(self) -> None:
        s = self.s
        version = s.version
        if workflow.patched(SEND_RACES_TIMERS) and workflow.now() >= self._deadline():
            self._record("voice_call_expired")  # the operator has it now
            return
        result = await self._bounded_activity(
            workflow.execute_activity_method(
                MessagingActivityStubs.place_voice_call,
                VoiceCall(
                    idempotency_key=self._key(f"call-{s.voice_calls + 1}"),
                    patient_id=self.inp.patient_id,
                    clinic_id=self.inp.clinic_id,
                    subject_id=self.inp.appointment_id,
                    workflow_id=self.wid,
                    question=self._question("voice_confirmation", [ANSWER_DIGIT], self._start()),
                    render=True,
                    facts=self._facts(),
                    not_after=self._deadline() if workflow.patched(SEND_RACES_TIMERS) else None,
                ),
                **self._send_options(self._deadline()),
            )
        )
        if s.version != version:
            return  # rescheduled meanwhile: this call was about the old time
        s.voice_calls += 1  # an attempt counts, whatever its result
        s.last_contact_at = workflow.now()
        self._record("voice_call" if result.status == "sent" else f"voice_call_{result.status}")

    async def _deadline_passed(self) -> None:
        self.s.asks_stopped = True
        self._set_stage("needs_clarification", "deadline_unconfirmed")
        await self._task("unconfirmed", "Patient has not confirmed the visit: call them", "unconfirmed")

    async def _no_show(self) -> None:
        # Stage first: a check-in arriving while the activities run is then refused (409).
        self._set_stage("no_show", "no_show")
        await self._cancel_tasks(["unconfirmed", "declined", "unread_message"], "no-show")
        await self._task("no_show_rebook", "Patient did not come: offer a new time", "no_show")

    async def _visit_over(self) -> None:
        self._finish("visit_ended")

    async def _send_post_memo(self) -> None:
        self.s.post_memo_done = True
        if workflow.patched(CATALOGUE_MEMOS):
            # The activity finds the service's after-visit memo in the clinic's catalogue.
            result = await self._send("care_memo", "post-memo")
            if result.status == "sent":
                self._record("care_memo_sent")
        elif any(k in self.inp.service.lower() for k in LEGACY_MEMO_KEYWORDS):
            await self._send("care_memo", "post-memo")
            self._record("care_memo_sent")

    async def _send_survey(self) -> None:
        aid = self.inp.appointment_id
        buttons = [Button(id=button_id("nps", aid, v), title="") for v in ("10", "8", "4")]
        # Marked before the send: an answer may overtake the activity's completion.
        self.s.survey_sent_at = workflow.now()
        question = self._question("survey", [ANSWER_SCORE], self.s.survey_sent_at + self.p.survey_timeout_td)
        await self._send("survey", "survey", buttons, question=question)
        self._record("survey_sent")

    async def _answer_feedback(self) -> None:
        s = self.s
        nps = s.nps if s.nps is not None else 0
        everyone = self.p.review_link_to == "everyone"
        if s.nps is None and s.feedback == "like":
            nps = 8  # a thumbs-up without a score: thanked like a passive (7-8), never a task
        if nps >= 9:
            await self._send("review_link", "feedback-answer")
        elif nps >= 7:
            await self._send("thanks_review" if everyone else "thanks", "feedback-answer")
        else:
            await self._send("feedback_form_review" if everyone else "feedback_form", "feedback-answer")
            details: dict[str, Any] = {"nps": s.nps}
            if s.feedback:
                details["feedback"] = s.feedback
            await self._task(
                "detractor_feedback",
                f"Negative feedback (NPS {nps}): contact the patient"
                if s.nps is not None
                else "Negative feedback (dislike): contact the patient",
                "detractor",
                assigned_role="director",
                details=details,
            )
        s.closed = True
        self._record("journey_closed")

    async def _survey_timed_out(self) -> None:
        self.s.closed = True
        self._record("survey_unanswered")

    # ---------------------------------------------------------------- handlers (signals, then updates)
    # One handler pattern (issue 15; the plan and the invoice follow it too): every signal and
    # update is an `async` handler that re-checks its stage (`_require`; the validator ran on
    # the state of its moment), changes the state, queues its effects (`_effects`) and wakes the
    # loop, which runs them and syncs the row; continue-as-new waits for all handlers and their
    # effects. Unlike the plan's, the appointment's handlers never await: an update's caller
    # may hold the doctor's slot lock while it waits (core.booking.move; on SQLite that is the
    # database's write lock), so an update waiting on an activity that writes the database, or
    # on a lock the loop holds across one, would never return.
    @workflow.signal(name=APPOINTMENT_REPLY_SIGNAL)
    async def patient_reply(self, reply: PatientReply) -> None:
        s = self.s
        if reply.provider_message_id:
            if reply.provider_message_id in s.seen_message_ids:
                return  # a provider redelivery
            s.seen_message_ids = [*s.seen_message_ids[-49:], reply.provider_message_id]
        if self._ended():
            return
        s.replies += 1
        self._changes += 1
        self._replied = True
        if s.stage == "finished":
            self._survey_reply(reply)
            return
        meaning = self._meaning(reply)
        if meaning == "call_status":
            self._record(f"call_{reply.call_status or 'ended'}")
            return
        if meaning == "confirm":
            if s.stage in ("booked", "needs_clarification"):
                was = s.stage
                s.asks_stopped = True
                self._set_stage("confirmed", "patient_confirmed")
                if was == "needs_clarification":
                    self._effects.append(partial(self._cancel_tasks, ["unconfirmed", "declined"], "patient confirmed"))
            else:
                self._record("patient_confirmed_again")
            return
        if meaning == "decline":
            if s.stage in ("booked", "confirmed", "needs_clarification"):
                s.asks_stopped = True
                self._set_stage("needs_clarification", "patient_declined")
                title = "Patient cannot come: reschedule or cancel"
                self._effects.append(partial(self._task, "declined", title, f"declined-{s.replies}"))
            else:
                self._record("patient_declined_late")
            return
        self._record("patient_message")
        self._unread(reply)

    def _unread(self, reply: PatientReply) -> None:
        details = {"message_log_id": reply.message_id} if reply.message_id else {}
        self._effects.append(
            partial(
                self._task,
                "unread_message",
                "Patient wrote a message: read and answer",
                f"message-{self.s.replies}",
                details=details or None,
            )
        )

    def _meaning(self, reply: PatientReply) -> str:
        if reply.kind == "call_status":
            return "call_status"
        if reply.kind == "digit":
            return {"1": "confirm", "2": "decline"}.get((reply.digit or "").strip(), "other")
        if reply.kind == "button" and reply.button_id:
            parsed = parse_button_id(reply.button_id)
            if parsed and parsed[0] in ("confirm", "decline"):
                return parsed[0]
        return classify(reply.text)

    def _survey_reply(self, reply: PatientReply) -> None:
        s = self.s
        score = None
        if reply.kind == "button" and reply.button_id:
            parsed = parse_button_id(reply.button_id)
            if parsed and parsed[0] == "nps" and parsed[2] is not None:
                score = parse_score(parsed[2])
        elif reply.kind in ("text", "digit"):
            score = parse_score(reply.text if reply.kind == "text" else reply.digit)
        feeling = feedback_word(reply.text) if reply.kind == "text" and score is None else None
        if score is not None and s.survey_sent_at is not None and not s.nps_answered:
            s.nps, s.nps_answered = score, True
            self._record(f"nps_{score}")
        elif (
            feeling is not None
            and s.survey_sent_at is not None
            and not s.nps_answered
            and workflow.patched(FEEDBACK_WORDS)
        ):
            s.feedback, s.nps_answered = feeling, True
            self._record(f"feedback_{feeling}")
        else:
            self._record("patient_message")
            self._unread(reply)

    @workflow.signal(name=DELIVERY_FAILED_SIGNAL)
    async def delivery_failed(self, failure: DeliveryFailure) -> None:
        """The provider reported an ask as failed/undelivered: the next channel gets it now
        (SMS after the messenger; with no channel left, the robot call) instead of waiting
        in silence for the next re-ask."""
        s = self.s
        if failure.question_kind != "confirmation" or not failure.message_key.startswith(self._key("")):
            return  # another question, or one about a time this visit no longer has
        if s.stage != "booked" or s.asks_stopped or s.opted_out or s.channel_dead:
            return
        self._record(f"ask_{failure.status}")
        self._effects.append(partial(self._resend_ask, failure))
        self._changes += 1

    async def _resend_ask(self, failure: DeliveryFailure) -> None:
        s = self.s
        if s.stage != "booked" or s.asks_stopped or not failure.message_key.startswith(self._key("")):
            return
        buttons, question = self._ask_message()
        last = failure.failed_channels[-1] if failure.failed_channels else "channel"
        result = await self._send(
            "reask",
            "",
            buttons,
            question=question,
            exclude=failure.failed_channels,
            key=f"{failure.message_key}:after-{last}",
            # The same words on the next channel: the first ask's text if that one failed.
            render_kind="reminder" if failure.message_key.removeprefix(self._key("")).startswith("ask") else None,
            not_after=self._deadline(),
        )
        if not failure.message_key.startswith(self._key("")):
            return  # rescheduled meanwhile: this ask was about the old time
        if result.status == "expired":
            self._record("ask_expired")
        elif result.status == "sent":
            s.last_contact_at = workflow.now()
            self._record(f"ask_resent_{result.channel}")
        elif result.status == "opted_out":
            s.opted_out = True
            self._record("opted_out")
        else:  # no channel left: the robot call, at once
            s.channel_dead = True
            self._record(f"ask_{result.status}")

    # ---------------------------------------------------------------- updates
    @workflow.update
    async def reschedule(self, req: RescheduleRequest) -> AppointmentSnapshot:
        self._require("reschedule")
        s = self.s
        s.version += 1
        s.version_booked_at = workflow.now()
        s.starts_at = req.starts_at
        if req.duration_minutes:
            s.duration_minutes = req.duration_minutes
        s.asks_sent = s.voice_calls = 0
        s.last_contact_at = None
        s.asks_stopped = s.channel_dead = False
        # A new time needs a new confirmation; open asks/declines about the old time are moot.
        self._set_stage("booked", f"rescheduled_v{s.version}")
        self._effects.append(partial(self._cancel_tasks, ["unconfirmed", "declined"], "rescheduled"))
        self._upsert_search_attributes(start=True)
        self._changes += 1
        return self.view()

    @reschedule.validator
    def _check_reschedule(self, req: RescheduleRequest) -> None:
        self._require("reschedule")
        if req.starts_at.tzinfo is None:
            raise ApplicationError(
                "starts_at needs a timezone offset", {"field": "starts_at"}, type="Invalid", non_retryable=True
            )
        if req.starts_at <= workflow.now():
            raise ApplicationError(
                "the new start is in the past", {"field": "starts_at"}, type="Invalid", non_retryable=True
            )
        if req.duration_minutes is not None and not 1 <= req.duration_minutes <= 24 * 60:
            raise ApplicationError(
                "duration_minutes must be 1..1440", {"field": "duration_minutes"}, type="Invalid", non_retryable=True
            )

    @workflow.update
    async def cancel(self, req: CancelRequest) -> AppointmentSnapshot:
        self._require("cancel")
        self._cancel(req)
        return self.view()

    @workflow.signal(name=APPOINTMENT_CANCEL_SIGNAL)
    async def cancel_requested(self, req: CancelRequest) -> None:
        if self.s.stage in CAN["cancel"]:
            self._cancel(req)
        else:
            workflow.logger.info("cancel request ignored in stage %s", self.s.stage)

    def _cancel(self, req: CancelRequest) -> None:
        self.s.cancel_reason = (req.reason or "")[:500] or None
        self.s.asks_stopped = True
        self._effects.append(partial(self._cancel_tasks, [], "appointment cancelled"))
        self._set_stage("cancelled", "cancelled")
        self._changes += 1

    @cancel.validator
    def _check_cancel(self, req: CancelRequest) -> None:
        self._require("cancel")

    @workflow.update
    async def confirm(self, req: StaffAction) -> AppointmentSnapshot:
        # The operator reached the patient by phone: stop asks and calls at once.
        self._require("confirm")
        self.s.asks_stopped = True
        self._effects.append(partial(self._cancel_tasks, [], "confirmed by phone"))
        self._set_stage("confirmed", "confirmed_by_operator")
        self._changes += 1
        return self.view()

    @confirm.validator
    def _check_confirm(self, req: StaffAction) -> None:
        self._require("confirm")

    @workflow.update
    async def check_in(self, req: StaffAction) -> AppointmentSnapshot:
        self._require("check_in")
        self.s.asks_stopped = True
        self.s.checked_in = True
        self._effects.append(partial(self._cancel_tasks, ["unconfirmed", "declined"], "patient arrived"))
        self._set_stage("checked_in", "checked_in")
        self._changes += 1
        return self.view()

    @check_in.validator
    def _check_check_in(self, req: StaffAction) -> None:
        self._require("check_in")

    @workflow.update
    async def finish(self, req: StaffAction) -> AppointmentSnapshot:
        self._require("finish")
        self._finish("finished_by_doctor")
        self._changes += 1
        return self.view()

    @finish.validator
    def _check_finish(self, req: StaffAction) -> None:
        self._require("finish")

    @workflow.update
    async def no_show(self, req: StaffAction) -> AppointmentSnapshot:
        # Staff (or the MIS's completed-visits file) say the patient did not come: the same
        # ending as the journey's own no-show timer, now.
        self._require("no_show")
        self.s.asks_stopped = True
        self._set_stage("no_show", "no_show_reported")
        self._effects.append(partial(self._cancel_tasks, ["unconfirmed", "declined", "unread_message"], "no-show"))
        self._effects.append(partial(self._task, "no_show_rebook", "Patient did not come: offer a new time", "no_show"))
        self._changes += 1
        return self.view()

    @no_show.validator
    def _check_no_show(self, req: StaffAction) -> None:
        self._require("no_show")

    def _require(self, action: str) -> None:
        stage = self.s.stage
        if stage not in CAN[action]:
            raise ApplicationError(
                f"cannot {action.replace('_', '-')} an appointment in stage {stage!r}",
                {"stage": stage, "allowed_stages": list(CAN[action])},
                type="Conflict",
                non_retryable=True,
            )

    # ---------------------------------------------------------------- query
    @workflow.query(name=APPOINTMENT_STATE_QUERY)
    def view(self) -> AppointmentSnapshot:
        """The one snapshot: query answer, update result and `sync_appointment` input."""
        s, i = self.s, self.inp
        return AppointmentSnapshot(
            appointment_id=i.appointment_id,
            workflow_id=self.wid,
            clinic_id=i.clinic_id,
            doctor_id=i.doctor_id,
            patient_id=i.patient_id,
            service=i.service,
            plan_id=i.plan_id,
            stage=s.stage,
            version=s.version,
            starts_at=self._start(),
            ends_at=self._ends(),
            duration_minutes=s.duration_minutes,
            asks_sent=s.asks_sent,
            voice_calls=s.voice_calls,
            nps=s.nps,
            cancel_reason=s.cancel_reason,
            history=list(s.history),
            service_code=i.service_code,
            source=i.source,
            journey_revision=s.revision,
        )

    # ---------------------------------------------------------------- helpers
    def _start(self) -> datetime:
        assert self.s.starts_at is not None
        return self.s.starts_at

    def _ends(self) -> datetime:
        return self._start() + timedelta(minutes=self.s.duration_minutes)

    def _booked_at(self) -> datetime:
        return self.inp.booked_at or workflow.info().start_time

    def _key(self, step: str) -> str:
        return f"{self.wid}:v{self.s.version}:{step}"

    def _record(self, event: str) -> None:
        self._add(HistoryEntry(at=workflow.now(), event=event, stage=self.s.stage))

    def _add(self, entry: HistoryEntry) -> None:
        self.s.history.append(entry)
        if len(self.s.history) > HISTORY_LIMIT:
            self.s.history = self.s.history[-HISTORY_LIMIT:]
        self.s.revision += 1

    def _set_stage(self, stage: str, event: str) -> None:
        changed = stage != self.s.stage
        self.s.stage = stage
        self._record(event)
        if changed:
            self._upsert_search_attributes()

    def _finish(self, event: str) -> None:
        self.s.finished_at = workflow.now()
        self._set_stage("finished", event)

    def _upsert_search_attributes(self, start: bool = False) -> None:
        updates: list[SearchAttributeUpdate[Any]] = [APPOINTMENT_STAGE.value_set(self.s.stage)]
        if start:
            updates += [CLINIC_ID.value_set(self.inp.clinic_id), APPOINTMENT_START.value_set(self._start())]
        workflow.upsert_search_attributes(updates)

    def _tz(self) -> tzinfo:
        return clinic_zone(self.inp.timezone)

    def _facts(self) -> MessageFacts:
        s, i = self.s, self.inp
        return MessageFacts(
            appointment_id=i.appointment_id,
            plan_id=i.plan_id,
            doctor_id=i.doctor_id,
            starts_at=self._start(),
            duration_minutes=s.duration_minutes,
            service=i.service,
            service_code=i.service_code,
            version=s.version,
            nps=s.nps,
        )

    async def _send(
        self,
        kind: str,
        step: str,
        buttons: list[Button] | None = None,
        question: Question | None = None,
        exclude: list[str] | None = None,
        key: str | None = None,
        render_kind: str | None = None,
        not_after: datetime | None = None,
        then: tuple[AppointmentSnapshot, int] | None = None,
    ) -> SendResult:
        """Send kind K about this visit: the activity renders the clinic's template. A message
        with `not_after` (an ask: the deadline; anything before the visit: its start) is never
        delivered after that moment: the activity refuses it then, and the send gives up.
        `then` (ROW_WITH_ASK, ROW_WITH_NOTICE): the row to write with the send's record when it
        goes out, and the revision the row must show; by the attempt inside the workflow task
        only (a queued one may run much later)."""
        bounded = not_after is not None and workflow.patched(SEND_RACES_TIMERS)
        if bounded and not_after is not None and workflow.now() >= not_after:
            return SendResult("expired")
        msg = OutboundMessage(
            idempotency_key=key or self._key(step),
            patient_id=self.inp.patient_id,
            clinic_id=self.inp.clinic_id,
            kind=kind,
            subject_id=self.inp.appointment_id,
            workflow_id=self.wid,
            buttons=buttons or [],
            question=question,
            exclude_channels=exclude or [],
            render=True,
            facts=self._facts(),
            render_kind=render_kind,
            not_after=not_after if bounded else None,
        )
        if self._may_send_in_task(not_after if bounded else None):
            try:
                method: Any = MessagingActivityStubs.send_patient_message
                arg: Any = msg
                if then is not None:  # the same send, with the row to write beside its record
                    method = AppointmentActivityStubs.send_appointment_message
                    arg = AppointmentSend(message=msg, row=then[0], row_was=then[1])
                result: SendResult = await workflow.execute_local_activity_method(
                    method,
                    arg,
                    schedule_to_close_timeout=LOCAL_SEND_TIMEOUT,
                    retry_policy=ONE_ATTEMPT,
                )
                return result
            except FailureError:
                # Paced, provider trouble, too slow: the queued attempt below takes over. (A local
                # activity's failure comes as an ApplicationError here, not an ActivityError.)
                pass
        return await self._bounded_activity(
            workflow.execute_activity_method(
                MessagingActivityStubs.send_patient_message,
                msg,
                **self._send_options(not_after if bounded else None),
            )
        )

    def _may_send_in_task(self, not_after: datetime | None) -> bool:
        """SENDS_LOCAL_FIRST: the first attempt may run inside this workflow task when neither
        the message's own moment nor any timer of the journey comes within LOCAL_SEND_WINDOW.
        (The patch is asked first: a journey from before it replays its old steps untouched.)"""
        if not workflow.patched(SENDS_LOCAL_FIRST):
            return False
        now = workflow.now()
        if not_after is not None and not_after - now < LOCAL_SEND_WINDOW:
            return False
        planned = self._plan(now)
        return planned is None or planned[0] - now >= LOCAL_SEND_WINDOW

    async def _bounded_activity(self, call: Any) -> SendResult:
        """A send that ran out of time (schedule-to-close = the moment its message stops
        making sense) is "expired": nothing went out after that moment."""
        try:
            result: SendResult = await call
        except ActivityError as e:
            # Out of time: the schedule-to-close timed out, or the server gave up retrying
            # because the next attempt would start after it.
            timed_out = isinstance(e.cause, TemporalTimeoutError) and e.cause.type == TimeoutType.SCHEDULE_TO_CLOSE
            if timed_out or e.retry_state == RetryState.TIMEOUT:
                return SendResult("expired")
            # No worker took it up before that moment: the server times a bounded send out
            # schedule-to-start (it defaults to the schedule-to-close), and nothing went out.
            # Before, that failed the whole journey (found by the chaos run).
            never_started = isinstance(e.cause, TemporalTimeoutError) and e.cause.type == TimeoutType.SCHEDULE_TO_START
            if never_started and workflow.patched(UNSTARTED_SEND_EXPIRES):
                return SendResult("expired")
            raise
        return result

    def _deadline(self) -> datetime:
        return self._start() - self.p.confirm_deadline_td

    def _send_options(self, not_after: datetime | None) -> dict[str, Any]:
        """Timeouts of a send. Patched journeys heartbeat (a dead worker is noticed in
        seconds) and give up at `not_after`; the activity's result then says "expired"."""
        opts: dict[str, Any] = {"start_to_close_timeout": SEND_TIMEOUT, "retry_policy": RETRY}
        if workflow.patched(SEND_RACES_TIMERS):
            opts["heartbeat_timeout"] = SEND_HEARTBEAT
            if not_after is not None:
                opts["schedule_to_close_timeout"] = max(not_after - workflow.now(), timedelta(seconds=1))
        return opts

    async def _task(
        self, kind: str, title: str, step: str, assigned_role: str = "operator", details: dict | None = None
    ) -> None:
        await workflow.execute_activity_method(
            TaskActivityStubs.create_operator_task,
            TaskRequest(
                dedup_key=self._key(step),
                kind=kind,
                title=title,
                assigned_role=assigned_role,
                clinic_id=self.inp.clinic_id,
                patient_id=self.inp.patient_id,
                subject_type="appointment",
                subject_id=self.inp.appointment_id,
                workflow_id=self.wid,
                details={"stage": self.s.stage, "starts_at": self._start().isoformat(), **(details or {})},
            ),
            start_to_close_timeout=DB_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )

    async def _cancel_tasks(self, kinds: list[str], reason: str) -> None:
        await workflow.execute_activity_method(
            TaskActivityStubs.cancel_operator_tasks,
            CancelTasks(subject_id=self.inp.appointment_id, kinds=kinds, reason=reason),
            start_to_close_timeout=DB_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )

    async def _drain_effects(self) -> None:
        while self._effects:
            await self._effects.pop(0)()

    async def _sync(self) -> None:
        s = self.s
        if s.synced_revision == s.revision:
            return
        revision = s.revision
        if self._replied and workflow.patched(REPLY_SHOWN_BEFORE_SYNC):
            self._replied = False
            await workflow.execute_activity_method(
                AppointmentActivityStubs.sync_appointment,
                self.view(),
                start_to_close_timeout=DB_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
            )
        else:
            await self._db_step(AppointmentActivityStubs.sync_appointment, self.view())
        s.synced_revision = revision

    async def _db_step(self, method: Any, arg: Any) -> Any:
        """A short database step of the journey itself (idempotent, bounded, retried): a local
        activity for journeys started since DB_STEPS_LOCAL, a task-queue activity before."""
        if workflow.patched(DB_STEPS_LOCAL):
            return await workflow.execute_local_activity_method(
                method, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=RETRY
            )
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=DB_TIMEOUT, heartbeat_timeout=HEARTBEAT, retry_policy=RETRY
        )


__all__ = ["AppointmentJourney"]
