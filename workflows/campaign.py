"""Campaigns (issue 12): the daily run of a clinic's recall / bonus / birthday campaign and
the small journey it starts for each patient (see contracts/campaigns.py).

CampaignRun (one per Schedule firing, visible in the UI):
  claim the day's audience (activity: SQL + a unique row per clinic/kind/patient/period)
  -> start one CampaignJourney per claimed row, id `campaign-<kind>-<send id>`, REJECT_DUPLICATE:
     a re-run finds nobody new, a retried start joins nothing twice.

CampaignJourney (one patient, one period):
  invite (out of quiet hours) -> wait for an answer
     -> silence: re-ask once after `reask_after` (if set) -> wait `answer_window` -> close
  yes -> the clinic's booking link, or an operator task "book this patient" and a note saying
         the clinic will call;   no -> done;   other words -> a person reads them, keep waiting
  the patient books anything (signal from the booking path, or the check before each send)
  -> a recall stops. Marketing opt-out and STOP are checked before each send.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from contracts.appointment import clinic_zone
    from contracts.campaigns import (
        BOOK_TASK_KIND,
        CAMPAIGN_JOURNEY_WORKFLOW,
        CAMPAIGN_RUN_WORKFLOW,
        PATIENT_BOOKED_SIGNAL,
        RECALL,
        STATE_QUERY,
        CampaignActivityStubs,
        CampaignOutcome,
        CampaignSend,
        CampaignSendResult,
        JourneyPlan,
        JourneyView,
        RunInput,
        RunResult,
        journey_workflow_id,
        question_kind,
    )
    from contracts.common import (
        DELIVERY_FAILED_SIGNAL,
        PATIENT_REPLY_SIGNAL,
        DeliveryFailure,
        PatientReply,
        TaskActivityStubs,
        TaskRef,
        TaskRequest,
        parse_button_id,
    )
    from contracts.policy import QuietHours  # noqa: F401 - JourneyPlan nests it
    from contracts.replies import classify
    from core.search_attributes import CLINIC_ID
    from models.quiet_hours import next_send_time

ACTIVITY_TIMEOUT = timedelta(seconds=60)
CLAIM_TIMEOUT = timedelta(minutes=10)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["NotFound", "Invalid"],
)
START_BATCH = 20  # journeys started at once by a run
# A provider's late "failed/undelivered" for an ask re-sends it on the next channel (at first
# it was only recorded).
RESEND_ON_FAILURE = "campaign-resend-on-delivery-failure"


# ----------------------------------------------------------------------------- the daily run
@workflow.defn(name=CAMPAIGN_RUN_WORKFLOW)
class CampaignRun:
    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        audience = await workflow.execute_activity_method(
            CampaignActivityStubs.claim_campaign_audience,
            inp,
            start_to_close_timeout=CLAIM_TIMEOUT,
            retry_policy=RETRY,
        )
        result = RunResult(found=audience.found, left_out=dict(audience.left_out))
        for i in range(0, len(audience.journeys), START_BATCH):
            batch = audience.journeys[i : i + START_BATCH]
            started = await asyncio.gather(*(self._start(p) for p in batch))
            result.started += sum(1 for s in started if s)
            result.already_running += sum(1 for s in started if not s)
        workflow.logger.info("campaign run done: %s started, %s found", result.started, result.found)
        return result

    async def _start(self, plan: JourneyPlan) -> bool:
        try:
            await workflow.start_child_workflow(
                CampaignJourney.run,
                plan,
                id=journey_workflow_id(plan.kind, plan.send_id),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes([SearchAttributePair(CLINIC_ID, plan.clinic_id)]),
            )
        except WorkflowAlreadyStartedError:
            return False  # started by an earlier run: never twice
        return True


# ----------------------------------------------------------------------------- one patient
def _yes_no(r: PatientReply) -> str:
    if r.kind == "button" and r.button_id and (parsed := parse_button_id(r.button_id)):
        return parsed[0] if parsed[0] in ("confirm", "decline") else "other"
    return classify(r.text) if r.kind == "text" else "other"


@workflow.defn(name=CAMPAIGN_JOURNEY_WORKFLOW)
class CampaignJourney:
    @workflow.init
    def __init__(self, p: JourneyPlan) -> None:
        self.p = p
        self.state = "starting"
        self.asks = 0
        self.answer: str | None = None
        self.booked = False
        self.history: list[str] = []
        self._others: list[PatientReply] = []
        self._failures: list[DeliveryFailure] = []
        self._last_ask: tuple[str, str] | None = None  # (step, template) of the latest ask
        self._started_at: datetime | None = None

    @workflow.run
    async def run(self, p: JourneyPlan) -> str:
        self._started_at = workflow.now()
        await workflow.execute_activity_method(
            CampaignActivityStubs.campaign_journey_started,
            p.send_id,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self.state = "inviting"
        sent = await self._ask("invite", f"campaign.{p.kind}.invite")
        if sent.status != "sent":
            return await self._finish(self._not_sent_state(sent.status), sent.status)
        reask = timedelta(seconds=p.reask_after) if p.reask_after is not None else None
        window = timedelta(seconds=p.answer_window)
        self.state = "waiting"
        await self._wait_until(workflow.now() + (reask if reask is not None else window))
        if self.answer is None and not self.booked and reask is not None:
            self.state = "reasking"
            sent = await self._ask("reask", "campaign.reask")
            if sent.status != "sent":
                if self.booked or sent.status == "booked":
                    return await self._finish("booked", "booked before the re-ask")
                if sent.status in ("opted_out", "marketing_opt_out"):
                    return await self._finish("opted_out", f"re-ask not sent: {sent.status}")
                return await self._finish("no_answer", f"re-ask not sent: {sent.status}")
            self.state = "waiting"
            await self._wait_until(workflow.now() + window)
        if self.booked and self.answer is None:
            return await self._finish("booked", "the patient booked a visit")
        if self.answer == "confirm":
            return await self._accepted()
        if self.answer == "decline":
            return await self._finish("declined", "the patient said no")
        return await self._finish("no_answer", "no answer")

    # ------------------------------------------------------------------ steps
    async def _ask(self, step: str, template: str) -> CampaignSendResult:
        """Send (out of the clinic's quiet hours) the invitation or the re-ask, with yes/no."""
        at = next_send_time(workflow.now(), self.p.quiet_hours, clinic_zone(self.p.timezone))
        if at > workflow.now():
            self.history.append(f"{step} deferred: quiet hours")
            await self._wait_until(at)
            if self.booked:
                return CampaignSendResult("booked")
            if self.answer is not None:
                return CampaignSendResult("sent")  # a reply already came (e.g. to the invitation)
        wf_id = workflow.info().workflow_id
        self._last_ask = (step, template)
        result = await self._send_ask(step, template, f"{wf_id}:{step}", [])
        if result.status == "sent":
            self.asks += 1
        self.history.append(f"{step}: {result.status}")
        return result

    async def _send_ask(self, step: str, template: str, key: str, exclude: list[str]) -> CampaignSendResult:
        return await workflow.execute_activity_method(
            CampaignActivityStubs.send_campaign_message,
            CampaignSend(
                send_id=self.p.send_id,
                step=step,
                idempotency_key=key,
                workflow_id=workflow.info().workflow_id,
                template=template,
                ask=True,
                exclude_channels=exclude,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _resend(self, f: DeliveryFailure) -> None:
        """The ask never arrived: the same ask on the next channel (SMS after WhatsApp)."""
        if self._last_ask is None:
            return
        step, template = self._last_ask
        last = f.failed_channels[-1] if f.failed_channels else "channel"
        result = await self._send_ask(step, template, f"{f.message_key}:after-{last}", list(f.failed_channels))
        self.history.append(f"{step} re-sent after {last} failed: {result.status}")

    async def _accepted(self) -> str:
        wf_id = workflow.info().workflow_id
        task_id = None
        if not self.p.has_booking_link:
            ref: TaskRef = await workflow.execute_activity_method(
                TaskActivityStubs.create_operator_task,
                TaskRequest(
                    dedup_key=f"{wf_id}:book",
                    kind=BOOK_TASK_KIND,
                    title=f"Book this patient: said yes to the {self.p.kind} campaign",
                    clinic_id=self.p.clinic_id,
                    patient_id=self.p.patient_id,
                    subject_type="campaign",
                    subject_id=self.p.send_id,
                    workflow_id=wf_id,
                    due_at=workflow.now(),
                    details={"campaign": self.p.kind},
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            task_id = ref.task_id
        template = "campaign.accepted_link" if self.p.has_booking_link else "campaign.accepted_call"
        sent = await workflow.execute_activity_method(
            CampaignActivityStubs.send_campaign_message,
            CampaignSend(
                send_id=self.p.send_id,
                step="accepted",
                idempotency_key=f"{wf_id}:accepted",
                workflow_id=wf_id,
                template=template,
                ask=False,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self.history.append(f"accepted: {sent.status}")
        note = "booking link sent" if self.p.has_booking_link else "operator task to book"
        return await self._finish("accepted", note, task_id)

    async def _wait_until(self, until: datetime) -> None:
        """Wait for an answer or a booking until `until`; other messages go to a person."""
        while True:
            remaining = (until - workflow.now()).total_seconds()
            if remaining <= 0 or self.answer is not None or self.booked:
                return
            try:
                await workflow.wait_condition(
                    lambda: self.answer is not None or self.booked or bool(self._others) or bool(self._failures),
                    timeout=remaining,
                )
            except TimeoutError:
                return
            while self._others:
                await self._to_a_person(self._others.pop(0))
            while self._failures:
                await self._resend(self._failures.pop(0))

    async def _to_a_person(self, r: PatientReply) -> None:
        wf_id = workflow.info().workflow_id
        self.history.append("message for a person")
        await workflow.execute_activity_method(
            TaskActivityStubs.create_operator_task,
            TaskRequest(
                dedup_key=f"{wf_id}:message:{r.message_id or len(self.history)}",
                kind="unread_message",
                title=f"Patient wrote about the {self.p.kind} invitation: read and answer",
                clinic_id=self.p.clinic_id,
                patient_id=self.p.patient_id,
                subject_type="campaign",
                subject_id=self.p.send_id,
                workflow_id=wf_id,
                due_at=workflow.now(),
                details={"message_log_id": r.message_id} if r.message_id else {},
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    def _not_sent_state(self, status: str) -> str:
        if status == "booked":
            return "booked"
        if status in ("opted_out", "marketing_opt_out"):
            return "opted_out"
        return "not_sent"

    async def _finish(self, state: str, note: str, task_id: str | None = None) -> str:
        while self._others:  # words that came with or after the answer: a person reads them
            await self._to_a_person(self._others.pop(0))
        self.state = state
        await workflow.execute_activity_method(
            CampaignActivityStubs.finish_campaign_send,
            CampaignOutcome(send_id=self.p.send_id, state=state, note=note[:300], task_id=task_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        return state

    # ------------------------------------------------------------------ signals / query
    @workflow.signal(name=PATIENT_REPLY_SIGNAL)
    def patient_reply(self, r: PatientReply) -> None:
        if self.answer is not None:
            self._others.append(r)
            return
        meaning = _yes_no(r)
        if r.question_kind in (None, question_kind(self.p.kind)) and meaning in ("confirm", "decline"):
            self.answer = meaning
            self.history.append(f"answer: {meaning}")
        else:
            self._others.append(r)

    @workflow.signal(name=PATIENT_BOOKED_SIGNAL)
    def patient_booked(self) -> None:
        if self.p.kind == RECALL and not self.booked:
            self.booked = True
            self.history.append("patient booked a visit")

    @workflow.signal(name=DELIVERY_FAILED_SIGNAL)
    def delivery_failed(self, f: DeliveryFailure) -> None:
        self.history.append(f"delivery failed: {', '.join(f.failed_channels)}")
        if self.answer is None and not self.booked and workflow.patched(RESEND_ON_FAILURE):
            self._failures.append(f)

    @workflow.query(name=STATE_QUERY)
    def view(self) -> JourneyView:
        return JourneyView(
            state=self.state,
            asks=self.asks,
            answer=self.answer,
            history=list(self.history),
            started_at=self._started_at,
        )
