"""Treatment-plan journey (SPEC §4): one long-lived workflow per plan, months to years.

Reading guide
* The plan walks its direction's stage graph (contracts/treatment_directions.py). Staff move it
  with the `advance` update; its validator rejects a move the graph does not allow, naming
  the allowed ones, before anything is written.
* A visit stage books a visit: a **child appointment journey** ("AppointmentJourney", the
  SPEC §3 journey) whose outcome flows back — finished: the plan may move on; no_show: an
  operator task to re-book (`plan_rebook`); cancelled: the plan waits for a new date.
  While a child runs, the plan cannot be moved by hand (the visit must end first).
* A call-back date becomes an operator task (`plan_callback`) at the clinic's
  `callback_hour` on that date; the journey sleeps on a durable timer until then.
  A lab-tests stage asks the patient after `lab_results_after` whether results are ready.
* Timers are data (`PlanState.timers`), so they survive continue-as-new unchanged.

Continue-as-new: when Temporal suggests it or history exceeds `policy.max_history_events`,
the plan continues as new carrying `PlanState` — but only at a quiet moment: every update
handler finished and **no child appointment running**. Children are started with
ParentClosePolicy.ABANDON (closing a plan run never kills a booked visit), and a plan never
continues-as-new while it awaits one, so no child result is ever lost. A waiting plan's
history barely grows (timers and queries add few events), so deferring is cheap.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from contracts.appointment import (
        APPOINTMENT_CANCEL_SIGNAL,
        AppointmentInput,
        AppointmentOutcome,
        appointment_workflow_id,
        clinic_zone,
    )
    from contracts.appointment import CancelRequest as AppointmentCancel
    from contracts.common import (
        ANSWER_YES_NO,
        DELIVERY_FAILED_SIGNAL,
        PATIENT_REPLY_SIGNAL,
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
        button_id,
        parse_button_id,
    )
    from contracts.replies import classify

    # The plan's contracts live in a passed-through module: their datetime fields must be
    # the host's datetime class for the payload converter (the sandbox proxies `datetime`).
    from contracts.treatment_directions import CANCELLED, Direction, direction
    from contracts.treatment_plan import (
        PLAN_TASK_KINDS,
        STATE_QUERY,
        TREATMENT_PLAN_WORKFLOW,
        Actor,
        AdvanceRequest,
        CancelRequest,
        HistoryEntry,
        LinkedAppointment,
        PendingTimer,
        PlanBooking,
        PlanInput,
        PlanSnapshot,
        TreatmentPlanActivityStubs,
        VisitObservation,
    )
    from core.search_attributes import TREATMENT_STAGE
    from models.quiet_hours import next_send_time

from workflows.appointment import AppointmentJourney

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["Conflict", "Invalid", "NotFound"],
)
# A changed lab-results question (v2 names what to do next). Plans already past that point
# replay the v1 wording; new ones ask with v2.
LAB_ASK_V2 = "lab-ask-wording-v2"
# The lab-results question follows the clinic's quiet hours (it did not at first).
LAB_ASK_QUIET_HOURS = "lab-ask-quiet-hours"
LAB_QUESTION = "lab_results"


def _yes_no(r: PatientReply) -> str:
    if r.kind == "button" and r.button_id and (parsed := parse_button_id(r.button_id)):
        return parsed[0] if parsed[0] in ("confirm", "decline") else "other"
    return classify(r.text) if r.kind == "text" else "other"


# ----------------------------------------------------------------------------- workflow
@workflow.defn(name=TREATMENT_PLAN_WORKFLOW)
class TreatmentPlanJourney:
    @workflow.init
    def __init__(self, inp: PlanInput) -> None:
        self.s = inp.state
        self.d: Direction = direction(self.s.direction)
        self._lock = asyncio.Lock()  # one state change at a time (updates, timers, children)
        self._wake = False
        self._watching = 0
        self._replies: list[PatientReply] = []  # answers routed here, handled by the main loop
        self._failures: list[DeliveryFailure] = []  # questions the provider could not deliver

    # ------------------------------------------------------------------ main loop
    @workflow.run
    async def run(self, inp: PlanInput) -> PlanSnapshot:
        if not inp.started:
            self._record("created", by=self.s.created_by, to_stage=self.s.stage)
            await self._sync()
        while self.s.status == "active":
            try:
                await workflow.wait_condition(
                    lambda: self._wake or self.s.status != "active" or self._should_rest(),
                    timeout=self._until_next_timer(),
                )
            except TimeoutError:
                pass
            self._wake = False
            if self.s.status != "active":
                break
            async with self._lock:
                await self._fire_due_timers()
                await self._handle_patient()
            if self._should_rest():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._should_rest():  # a handler may have started a child meanwhile
                    self.s.runs += 1
                    workflow.logger.info("plan continues as new", extra={"runs": self.s.runs})
                    workflow.continue_as_new(PlanInput(state=self.s, started=True))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view()

    def _should_rest(self) -> bool:
        """Time to continue-as-new: history is large, and nothing is in flight."""
        info = workflow.info()
        big = (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > self.s.policy.max_history_events
        )
        return (
            big
            and self.s.status == "active"
            and not self._lock.locked()
            and self._watching == 0
            and not self._replies
            and not self._failures
            and not any(a.running for a in self.s.appointments)
        )

    def _until_next_timer(self) -> timedelta | None:
        if not self.s.timers:
            return None
        nearest = min(t.fire_at for t in self.s.timers)
        return max(nearest - workflow.now(), timedelta(0)) or timedelta(milliseconds=1)

    # ------------------------------------------------------------------ query
    @workflow.query(name=STATE_QUERY)
    def state(self) -> PlanSnapshot:
        return self._view()

    # ------------------------------------------------------------------ advance
    @workflow.update  # name: ADVANCE_UPDATE
    async def advance(self, req: AdvanceRequest) -> PlanSnapshot:
        async with self._lock:
            self._check_advance(req)  # the state may have moved since the validator ran
            for a in self.s.appointments:  # visits finished while their journeys run on
                if a.running and self._observed(req.observed, a) == "finished":
                    a.stage = "finished"
                    self._record("appointment_finished", by=req.actor, appointment_id=a.appointment_id)
            linked = await self._book(req) if req.appointment else None
            from_stage, to = self.s.stage, self.d.stage(req.to_stage)
            self.s.stage = to.key
            self.s.timers = []  # the previous stage's call-backs no longer apply
            if req.callback_at is not None:
                self.s.timers.append(self._timer("callback", req.callback_at))
            if to.asks_lab_results:
                after = workflow.now() + self.s.policy.lab_results_after_td
                if workflow.patched(LAB_ASK_QUIET_HOURS):
                    after = self._out_of_quiet_hours(after)
                self.s.timers.append(self._timer("lab_ask", after))
            self._record(
                "advanced",
                by=req.actor,
                from_stage=from_stage,
                to_stage=to.key,
                note=req.note,
                appointment_id=linked.appointment_id if linked else None,
            )
            if to.kind == "done":
                self.s.status = "completed"
            workflow.upsert_search_attributes([TREATMENT_STAGE.value_set(self._sa_stage())])
            await self._close_plan_tasks("the plan moved to " + to.key)
            await self._sync()
            self._wake = True
            return self._view()

    @advance.validator
    def _validate_advance(self, req: AdvanceRequest) -> None:
        self._check_advance(req)

    def _check_advance(self, req: AdvanceRequest) -> None:
        if self.s.status != "active":
            raise ApplicationError(
                f"the plan is {self.s.status}; it cannot move",
                {"allowed": [], "current_stage": self.s.stage},
                type="Conflict",
                non_retryable=True,
            )
        running = self._blocking(req.observed)
        if running:
            a = running[0]
            raise ApplicationError(
                f"the visit for stage {a.plan_stage!r} (appointment {a.appointment_id}) is still "
                f"running; the plan moves when that visit is finished, missed or cancelled",
                {"allowed": [], "current_stage": self.s.stage, "running_appointment_id": a.appointment_id},
                type="Conflict",
                non_retryable=True,
            )
        allowed = self._allowed(req.observed)
        if req.to_stage not in allowed:
            raise ApplicationError(
                f"a plan at {self.s.stage!r} cannot move to {req.to_stage!r}; allowed: "
                + (", ".join(allowed) or "nothing"),
                {"allowed": allowed, "current_stage": self.s.stage},
                type="Conflict",
                non_retryable=True,
            )
        to = self.d.stage(req.to_stage)
        if to.is_visit and req.appointment is None and req.callback_at is None:
            raise ApplicationError(
                f"stage {to.key!r} is done at a visit: send an appointment to book, or a "
                "callback_on date for an operator to call the patient",
                {"field": "appointment"},
                type="Invalid",
                non_retryable=True,
            )
        if not to.is_visit and req.appointment is not None:
            raise ApplicationError(
                f"stage {to.key!r} is not a visit; it books no appointment",
                {"field": "appointment"},
                type="Invalid",
                non_retryable=True,
            )
        if req.appointment is not None and req.appointment.starts_at <= workflow.now():
            raise ApplicationError(
                "the appointment must start in the future",
                {"field": "appointment.starts_at"},
                type="Invalid",
                non_retryable=True,
            )

    @staticmethod
    def _observed(observed: list[VisitObservation], a: LinkedAppointment) -> str:
        for o in observed:
            if o.appointment_id == a.appointment_id:
                return o.stage
        return a.stage

    def _blocking(self, observed: list[VisitObservation] | None = None) -> list[LinkedAppointment]:
        """Child journeys whose visit has not ended yet: the plan waits for them."""
        return [a for a in self.s.appointments if a.running and self._observed(observed or [], a) != "finished"]

    def _allowed(self, observed: list[VisitObservation] | None = None) -> list[str]:
        """The graph's next stages, plus the current visit stage again while its visit has
        not happened yet (book it after a call-back, or re-book after a no-show/cancel)."""
        cur = self.d.stage(self.s.stage)
        allowed = list(cur.next)
        visited = any(
            a.plan_stage == cur.key and self._observed(observed or [], a) == "finished" for a in self.s.appointments
        )
        # The plan is born at its first stage (the consultation happened): nothing to book.
        rebook = cur.is_visit and not visited and cur.key != self.d.first.key
        if rebook and cur.key not in allowed:
            allowed.insert(0, cur.key)
        return allowed

    # ------------------------------------------------------------------ cancel
    @workflow.update  # name: CANCEL_UPDATE
    async def cancel(self, req: CancelRequest) -> PlanSnapshot:
        async with self._lock:
            self._check_cancel()
            from_stage = self.s.stage
            self.s.status = "cancelled"
            self.s.timers = []
            self._record("cancelled", by=req.actor, from_stage=from_stage, to_stage=CANCELLED, note=req.reason)
            workflow.upsert_search_attributes([TREATMENT_STAGE.value_set(CANCELLED)])
            await self._close_plan_tasks("the plan was cancelled")
            # Added after plans were running: older histories replay without it.
            if req.cancel_visits and workflow.patched("plan-cancel-cancels-visits"):
                for linked in self.s.appointments:
                    if linked.running:
                        await workflow.get_external_workflow_handle(linked.workflow_id).signal(
                            APPOINTMENT_CANCEL_SIGNAL,
                            AppointmentCancel(reason=f"treatment plan cancelled: {req.reason}"[:500]),
                        )
            await self._sync()
            return self._view()

    @cancel.validator
    def _validate_cancel(self, req: CancelRequest) -> None:
        self._check_cancel()

    def _check_cancel(self) -> None:
        if self.s.status != "active":
            raise ApplicationError(
                f"the plan is already {self.s.status}",
                {"current_stage": self.s.stage},
                type="Conflict",
                non_retryable=True,
            )

    # ------------------------------------------------------------------ child appointments
    async def _book(self, req: AdvanceRequest) -> LinkedAppointment:
        assert req.appointment is not None
        ap, stage = req.appointment, self.d.stage(req.to_stage)
        self.s.seq += 1
        wf_id = workflow.info().workflow_id
        # Deterministic: the same plan and booking step always name the same appointment.
        appointment_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{wf_id}/booking/{self.s.seq}").hex
        service = ap.service or stage.service or stage.title
        try:
            booked = await workflow.execute_activity_method(
                TreatmentPlanActivityStubs.book_plan_appointment,
                PlanBooking(
                    appointment_id=appointment_id,
                    idempotency_key=f"{wf_id}:booking:{self.s.seq}",
                    plan_id=self.s.plan_id,
                    clinic_id=self.s.clinic_id,
                    patient_id=self.s.patient_id,
                    doctor_id=ap.doctor_id,
                    starts_at=ap.starts_at,
                    duration_minutes=ap.duration_minutes,
                    service=service,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError as e:
            cause = e.cause
            if isinstance(cause, ApplicationError):  # doctor unknown, slot taken: the caller's
                raise ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True) from None
            raise
        policy = req.policy or self.s.policy
        handle = await workflow.start_child_workflow(
            AppointmentJourney.run,
            AppointmentInput(
                appointment_id=booked.appointment_id,
                clinic_id=self.s.clinic_id,
                patient_id=self.s.patient_id,
                doctor_id=ap.doctor_id,
                starts_at=ap.starts_at,
                duration_minutes=ap.duration_minutes,
                service=service,
                timezone=self.s.timezone,
                policy=policy,
                plan_id=self.s.plan_id,
                booked_at=workflow.now(),
            ),
            id=appointment_workflow_id(booked.appointment_id),
            task_queue=workflow.info().task_queue,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
        linked = LinkedAppointment(
            appointment_id=booked.appointment_id,
            workflow_id=handle.id,
            plan_stage=stage.key,
            doctor_id=ap.doctor_id,
            starts_at=ap.starts_at,
            duration_minutes=ap.duration_minutes,
            service=service,
        )
        self.s.appointments.append(linked)
        self._watching += 1
        # Workflow tasks run on Temporal's deterministic event loop.
        asyncio.create_task(self._watch(handle, linked))
        return linked

    async def _watch(self, handle: workflow.ChildWorkflowHandle, linked: LinkedAppointment) -> None:
        try:
            try:
                outcome: AppointmentOutcome = await handle
            except ChildWorkflowError:
                outcome = AppointmentOutcome(
                    linked.appointment_id, "cancelled", reason="the appointment journey failed"
                )
            async with self._lock:
                await self._on_visit_outcome(linked, outcome)
        finally:
            self._watching -= 1
            self._wake = True

    async def _on_visit_outcome(self, linked: LinkedAppointment, out: AppointmentOutcome) -> None:
        linked.stage, linked.running, linked.reason = out.stage, False, out.reason
        self._record(
            f"appointment_{out.stage}", by=Actor(role="journey"), appointment_id=linked.appointment_id, note=out.reason
        )
        if out.stage == "no_show" and self.s.status == "active":
            await self._task(
                f"rebook:{linked.appointment_id}",
                "plan_rebook",
                f"Patient missed the visit for '{self.d.stage(linked.plan_stage).title}': call to re-book",
                due_at=workflow.now(),
            )
        await self._sync()

    # ------------------------------------------------------------------ timers
    def _timer(self, kind: str, at: datetime) -> PendingTimer:
        self.s.seq += 1
        return PendingTimer(id=self.s.seq, kind=kind, fire_at=at, stage=self.s.stage)

    async def _fire_due_timers(self) -> None:
        now = workflow.now()
        due = [t for t in self.s.timers if t.fire_at <= now]
        for t in due:
            if t.kind == "lab_ask" and workflow.patched(LAB_ASK_QUIET_HOURS):
                later = self._out_of_quiet_hours(now)
                if later > now:  # e.g. planned before the clinic set its quiet hours
                    t.fire_at = later
                    self._record("lab_results_ask_deferred", by=Actor(role="journey"), note="quiet hours")
                    continue
            if t.kind == "callback":
                await self._task(
                    f"callback:{t.id}",
                    "plan_callback",
                    f"Call the patient to book the next stage (now: {self.d.stage(t.stage).title})",
                    due_at=t.fire_at,
                )
                self._record("callback_task", by=Actor(role="journey"), note=t.stage)
            elif t.kind == "lab_ask":
                await self._ask_lab_results(t)
            self.s.timers.remove(t)
        if due:
            await self._sync()

    async def _ask_lab_results(self, t: PendingTimer) -> None:
        # The text is the clinic's template `lab_results_ask`, rendered by the activity (the
        # patch call stays: histories that passed it carry its marker).
        workflow.patched(LAB_ASK_V2)
        wf_id = workflow.info().workflow_id
        result = await self._send_lab_question(f"{wf_id}:lab-ask:{t.id}")
        self._record("lab_results_asked", by=Actor(role="journey"), note=result.status)
        if result.status != "sent":  # no messenger, opted out, failed: a person calls instead
            await self._lab_call_task(f"lab-call:{t.id}")

    async def _send_lab_question(self, key: str, exclude: list[str] | None = None) -> SendResult:
        """The lab-results question: an open question the plan's `patient_reply` answers."""
        pid = self.s.plan_id
        return await workflow.execute_activity_method(
            MessagingActivityStubs.send_patient_message,
            OutboundMessage(
                idempotency_key=key,
                patient_id=self.s.patient_id,
                clinic_id=self.s.clinic_id,
                kind="lab_results_ask",
                subject_id=pid,
                workflow_id=workflow.info().workflow_id,
                buttons=[  # titles: templates button.lab_ready / button.lab_not_ready
                    Button(id=button_id("confirm", pid), title="", title_kind="button.lab_ready"),
                    Button(id=button_id("decline", pid), title="", title_kind="button.lab_not_ready"),
                ],
                question=Question(
                    kind=LAB_QUESTION,
                    subject_type="treatment_plan",
                    subject_id=pid,
                    answers=[ANSWER_YES_NO],
                    subject_state=self.s.stage,
                ),
                exclude_channels=exclude or [],
                render=True,
                facts=MessageFacts(plan_id=pid),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _lab_call_task(self, step: str) -> None:
        await self._task(
            step, "plan_callback", "Ask the patient whether lab test results are ready", due_at=workflow.now()
        )

    def _out_of_quiet_hours(self, at: datetime) -> datetime:
        return next_send_time(at, self.s.policy.quiet_hours, clinic_zone(self.s.timezone))

    # ------------------------------------------------------------------ the patient answers
    @workflow.signal(name=PATIENT_REPLY_SIGNAL)
    def patient_reply(self, reply: PatientReply) -> None:
        """An answer routed here (conversations.routing): the lab-results question's yes/no,
        or a message about the plan. Handled by the main loop under the lock."""
        if self.s.status == "active":
            self._replies.append(reply)
            self._wake = True

    @workflow.signal(name=DELIVERY_FAILED_SIGNAL)
    def delivery_failed(self, failure: DeliveryFailure) -> None:
        if self.s.status == "active" and failure.question_kind == LAB_QUESTION:
            self._failures.append(failure)
            self._wake = True

    async def _handle_patient(self) -> None:
        lab_stage = self.d.stage(self.s.stage).asks_lab_results
        changed = False
        while self._replies:
            r = self._replies.pop(0)
            changed = True
            meaning = _yes_no(r)
            self.s.seq += 1
            if r.question_kind == LAB_QUESTION and lab_stage and meaning == "confirm":
                self.s.timers = [t for t in self.s.timers if t.kind != "lab_ask"]
                self._record("lab_results_ready", by=Actor(role="patient"))
                await self._task(
                    f"lab-ready:{self.s.seq}",
                    "plan_callback",
                    "Lab test results are ready: call the patient to book the next visit",
                    due_at=workflow.now(),
                )
            elif r.question_kind == LAB_QUESTION and lab_stage and meaning == "decline":
                # Not yet: ask again after the clinic's lab_results_after.
                self.s.timers = [t for t in self.s.timers if t.kind != "lab_ask"]
                after = self._out_of_quiet_hours(workflow.now() + self.s.policy.lab_results_after_td)
                self.s.timers.append(self._timer("lab_ask", after))
                self._record("lab_results_not_ready", by=Actor(role="patient"))
            else:
                self._record("patient_message", by=Actor(role="patient"))
                await self._task(
                    f"message:{self.s.seq}",
                    "unread_message",
                    "Patient wrote about the treatment plan: read and answer",
                    due_at=workflow.now(),
                    details={"message_log_id": r.message_id} if r.message_id else None,
                )
        while self._failures:
            f = self._failures.pop(0)
            if not lab_stage:
                continue
            changed = True
            last = f.failed_channels[-1] if f.failed_channels else "channel"
            result = await self._send_lab_question(f"{f.message_key}:after-{last}", f.failed_channels)
            self._record("lab_results_asked", by=Actor(role="journey"), note=f"resent: {result.status}")
            if result.status != "sent":
                self.s.seq += 1
                await self._lab_call_task(f"lab-call:undelivered:{self.s.seq}")
        if changed:
            await self._sync()

    # ------------------------------------------------------------------ side effects
    async def _task(
        self, step: str, kind: str, title: str, due_at: datetime | None, details: dict | None = None
    ) -> None:
        wf_id = workflow.info().workflow_id
        await workflow.execute_activity_method(
            TaskActivityStubs.create_operator_task,
            TaskRequest(
                dedup_key=f"{wf_id}:{step}",
                kind=kind,
                title=title,
                clinic_id=self.s.clinic_id,
                patient_id=self.s.patient_id,
                subject_type="treatment_plan",
                subject_id=self.s.plan_id,
                workflow_id=wf_id,
                due_at=due_at,
                details={"direction": self.s.direction, "stage": self.s.stage, **(details or {})},
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _close_plan_tasks(self, reason: str) -> None:
        await workflow.execute_activity_method(
            TaskActivityStubs.cancel_operator_tasks,
            CancelTasks(subject_id=self.s.plan_id, kinds=list(PLAN_TASK_KINDS), reason=reason),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _sync(self) -> None:
        self.s.sync_version += 1
        await workflow.execute_activity_method(
            TreatmentPlanActivityStubs.sync_treatment_plan,
            self._view(),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    # ------------------------------------------------------------------ helpers
    def _record(
        self,
        action: str,
        by: Actor,
        from_stage: str | None = None,
        to_stage: str | None = None,
        appointment_id: str | None = None,
        note: str | None = None,
    ) -> None:
        self.s.history.append(
            HistoryEntry(
                at=workflow.now(),
                action=action,
                by_user=by.user_id,
                by_role=by.role,
                from_stage=from_stage,
                to_stage=to_stage,
                appointment_id=appointment_id,
                note=note,
            )
        )

    def _sa_stage(self) -> str:
        return CANCELLED if self.s.status == "cancelled" else self.s.stage

    def _next_due(self) -> datetime | None:
        when = [t.fire_at for t in self.s.timers]
        when += [a.starts_at for a in self._blocking()]
        return min(when) if when else None

    def _waiting_for(self) -> str | None:
        if self.s.status != "active":
            return None
        if self._blocking():
            return "visit"
        mine = [a for a in self.s.appointments if a.plan_stage == self.s.stage]
        if mine and mine[-1].stage == "no_show":
            return "rebooking"
        if mine and mine[-1].stage == "cancelled":
            return "new_date"
        if any(t.kind == "lab_ask" for t in self.s.timers):
            return "lab_results"
        if self.s.timers:
            return "callback"
        return "staff"

    def _view(self) -> PlanSnapshot:
        cur = self.d.stage(self.s.stage)
        return PlanSnapshot(
            plan_id=self.s.plan_id,
            workflow_id=workflow.info().workflow_id,
            clinic_id=self.s.clinic_id,
            patient_id=self.s.patient_id,
            direction=self.s.direction,
            stage=self._sa_stage(),
            stage_title=cur.title,
            stage_kind=cur.kind,
            status=self.s.status,
            waiting_for=self._waiting_for(),
            next_due_at=self._next_due(),
            allowed_next=self._allowed() if self.s.status == "active" and not self._blocking() else [],
            appointments=self.s.appointments,
            history=self.s.history,
            items=self.s.items,
            pricing=self.s.pricing,
            runs=self.s.runs,
            version=self.s.sync_version,
        )


__all__ = ["TreatmentPlanJourney"]  # contracts: contracts.treatment_plan
