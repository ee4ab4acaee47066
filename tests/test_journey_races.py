"""Issue 16, found by the chaos run: races between the journey's own activities and the news
that arrives meanwhile. The journey runs on the session's dev server with every activity
replaced by name (a gate holds the one under test), so each race is made on purpose.

- A change (a patient's reply) that arrives while the journey is writing its row (the
  `sync_appointment` activity) is written too, at once: before, the row said `booked` for
  a patient who had confirmed until the next timer (the end of the visit), so the desk and
  the reports saw an unconfirmed visit.
- A bounded send that no worker takes up before its moment passes (every worker's activity
  slots gone) is "expired", nothing went out; before, the server's schedule-to-start timeout
  failed the whole journey and its row stayed `booked` for good.
- An in-flight booking notice does not hold the ask: when the ask is due and the notice has
  still not gone out (a provider or a worker is slow), the ask goes out beside it, before the
  deadline; before, silent patients reached the deadline never asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker, WorkflowRunner

from contracts.appointment import (
    APPOINTMENT_REPLY_SIGNAL,
    AppointmentContext,
    AppointmentInput,
    AppointmentSend,
    AppointmentSnapshot,
    ContextRequest,
    StaffAction,
    appointment_workflow_id,
)
from contracts.common import CancelTasks, OutboundMessage, PatientReply, SendResult, TaskRef, TaskRequest, VoiceCall
from contracts.policy import JourneyPolicy
from core.temporal import workflow_runner
from tests.support.live import eventually
from workflows.appointment import AppointmentJourney


@dataclass
class Gated:
    """The journey's activities by name; `hold_sync` / `hold_send` name what waits at a gate."""

    hold_sync: str | None = None  # the sync whose last history event is this waits
    hold_send: str | None = None  # sends of this kind wait (heartbeating) for the gate
    refuse_local: bool = False  # a send's in-task first attempt fails (as when paced out)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    synced: list[AppointmentSnapshot] = field(default_factory=list)
    sent: list[tuple[datetime, str]] = field(default_factory=list)
    row_revision: int | None = None  # the journey revision the row shows (as the DB's condition)
    keep_row: bool = False  # the row's revision stays `row_revision` (it moved on for good)
    beside: list[bool] = field(default_factory=list)  # each row write offered with a send: written?

    async def _wait_gate(self) -> None:
        self.held.set()
        while not self.gate.is_set():
            activity.heartbeat()
            try:
                await asyncio.wait_for(self.gate.wait(), 0.5)
            except TimeoutError:
                pass

    def activities(self) -> list[object]:
        @activity.defn(name="load_appointment_context")
        async def load_context(req: ContextRequest) -> AppointmentContext:
            return AppointmentContext(clinic_name="Clinic", doctor_name="Dr", link="http://x/a")

        @activity.defn(name="sync_appointment")
        async def sync(snap: AppointmentSnapshot) -> None:
            if self.hold_sync and snap.history and snap.history[-1].event == self.hold_sync:
                self.hold_sync = None
                await self._wait_gate()
            self.synced.append(snap)
            if not self.keep_row:
                self.row_revision = snap.journey_revision

        @activity.defn(name="send_patient_message")
        async def send(msg: OutboundMessage) -> SendResult:
            if self.refuse_local and activity.info().is_local:
                raise ApplicationError("paced", type="ProviderPaced")
            if msg.kind == self.hold_send:
                await self._wait_gate()
            self.sent.append((datetime.now(UTC), msg.kind))
            return SendResult(status="sent", channel="sms", provider_message_id=uuid.uuid4().hex)

        @activity.defn(name="send_appointment_message")
        async def send_with_row(req: AppointmentSend) -> SendResult:
            result = await send(req.message)
            written = self.row_revision == req.row_was  # as the DB's conditional UPDATE
            self.beside.append(written)
            if written:
                self.synced.append(req.row)
                self.row_revision = req.row.journey_revision
            return dataclasses.replace(result, row_written=written)

        @activity.defn(name="place_voice_call")
        async def call(c: VoiceCall) -> SendResult:
            self.sent.append((datetime.now(UTC), "voice_call"))
            return SendResult(status="sent", channel="voice")

        @activity.defn(name="create_operator_task")
        async def task(t: TaskRequest) -> TaskRef:
            return TaskRef(task_id=uuid.uuid4().hex, created=True)

        @activity.defn(name="cancel_operator_tasks")
        async def cancel(c: CancelTasks) -> int:
            return 0

        return [load_context, sync, send, send_with_row, call, task, cancel]


def _input(starts_in: timedelta, policy: JourneyPolicy) -> AppointmentInput:
    aid = uuid.uuid4().hex
    now = datetime.now(UTC)
    return AppointmentInput(
        appointment_id=aid,
        clinic_id="c1",
        patient_id="p1",
        doctor_id="d1",
        starts_at=now + starts_in,
        duration_minutes=30,
        service="Consultation",
        timezone="Europe/Kyiv",
        policy=policy,
        booked_at=now,
    )


@asynccontextmanager
async def journey(
    client: Client, fakes: Gated, starts_in: timedelta, policy: JourneyPolicy, runner: WorkflowRunner | None = None
) -> AsyncIterator[WorkflowHandle]:
    """One journey on its own worker (`runner`: the worker's own by default)."""
    tq = f"races-{uuid.uuid4().hex[:8]}"
    inp = _input(starts_in, policy)
    async with Worker(
        client,
        task_queue=tq,
        workflows=[AppointmentJourney],
        activities=fakes.activities(),
        workflow_runner=runner or workflow_runner(),
    ):
        handle = await client.start_workflow(
            AppointmentJourney.run, inp, id=appointment_workflow_id(inp.appointment_id), task_queue=tq
        )
        try:
            yield handle
        finally:
            fakes.gate.set()
            with contextlib.suppress(RPCError):  # unless it ended by itself
                await handle.terminate("test over")


async def test_a_reply_that_arrives_while_the_row_is_written_is_written_too(client: Client) -> None:
    # Nothing else is due for weeks after the notice: only the reply can move the row on.
    fakes = Gated(hold_sync="notice_sent")
    policy = JourneyPolicy(quiet_hours=None)
    async with journey(client, fakes, timedelta(days=30), policy) as handle:
        await asyncio.wait_for(fakes.held.wait(), 60)  # the row is being written
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="Так, буду"))

        async def confirmed_in_journey() -> None:
            assert (await handle.query(AppointmentJourney.view)).stage == "confirmed"

        await eventually(confirmed_in_journey, timeout=60)
        fakes.gate.set()  # the write that began before the reply completes

        async def row_confirmed() -> None:
            assert fakes.synced and fakes.synced[-1].stage == "confirmed", [s.stage for s in fakes.synced]

        await eventually(row_confirmed, timeout=30)


async def test_an_ask_due_while_the_notice_is_still_on_its_way_goes_out_before_the_deadline(client: Client) -> None:
    # The ask is due 12 s after booking, the deadline 30 s after it; the notice is stuck
    # (its provider hangs) the whole time.
    fakes = Gated(hold_send="booking_notice")
    policy = JourneyPolicy(
        reminder_lead=48,
        reask_interval=600,
        reask_count=0,
        voice_call_attempts=0,
        confirm_deadline=30,
        quiet_hours=None,
    )
    async with journey(client, fakes, timedelta(seconds=60), policy) as handle:

        async def deadline_reached() -> None:
            events = [h.event for h in (await handle.query(AppointmentJourney.view)).history]
            assert "deadline_unconfirmed" in events, events

        await eventually(deadline_reached, timeout=90, interval=0.5)
        view = await handle.query(AppointmentJourney.view)
        at = {h.event: h.at for h in view.history}
        assert "ask_sent" in at, [h.event for h in view.history]
        assert at["ask_sent"] < at["deadline_unconfirmed"]
        assert [k for _, k in fakes.sent] == ["reminder"]  # the notice is still stuck


async def test_a_send_no_worker_takes_up_before_its_moment_expires_and_the_journey_goes_on(client: Client) -> None:
    # The ask is due 12 s after booking and stops making sense at the deadline (30 s); from
    # just after the notice until after the deadline no worker runs activities.
    fakes = Gated()
    policy = JourneyPolicy(
        reminder_lead=48,
        reask_interval=600,
        reask_count=0,
        voice_call_attempts=0,
        confirm_deadline=30,
        quiet_hours=None,
    )
    tq = f"races-{uuid.uuid4().hex[:8]}"
    inp = _input(timedelta(seconds=60), policy)
    # The journey's worker runs its own DB steps (local activities) but takes no task-queue
    # activities: only the second worker does, while it runs.
    async with Worker(
        client,
        task_queue=tq,
        workflows=[AppointmentJourney],
        activities=fakes.activities(),
        no_remote_activities=True,
        workflow_runner=workflow_runner(),
    ):
        handle = await client.start_workflow(
            AppointmentJourney.run, inp, id=appointment_workflow_id(inp.appointment_id), task_queue=tq
        )
        try:
            async with Worker(client, task_queue=tq, activities=fakes.activities()):

                async def notice_written() -> None:
                    assert any(h.event == "notice_sent" for s in fakes.synced for h in s.history)

                await eventually(notice_written, timeout=60)

            async def ask_over() -> None:
                status = (await handle.describe()).status
                assert status != WorkflowExecutionStatus.FAILED, "the journey failed"
                events = [h.event for h in (await handle.query(AppointmentJourney.view)).history]
                assert "ask_expired" in events, events

            await eventually(ask_over, timeout=120, interval=0.5)
            async with Worker(client, task_queue=tq, activities=fakes.activities()):

                async def handed_over() -> None:
                    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
                    assert fakes.synced[-1].stage == "needs_clarification", fakes.synced[-1]

                await eventually(handed_over, timeout=60)
            assert "reminder" not in [k for _, k in fakes.sent]
        finally:
            await handle.terminate("test over")


async def test_every_activity_of_the_journey_heartbeats_so_a_dead_worker_is_noticed_in_seconds(
    client: Client,
) -> None:
    """A worker killed mid row-write held the journey (and its timers) for the write's 20 s
    start-to-close: every task-queue activity the journey schedules has a heartbeat timeout,
    and every implementation heartbeats while it runs."""
    from temporalio.api.enums.v1 import EventType

    from activities.appointments import AppointmentActivities
    from activities.tasks import TaskActivities

    fakes = Gated(refuse_local=True)  # the notice's first attempt runs in the workflow task
    async with journey(client, fakes, timedelta(days=30), JourneyPolicy(quiet_hours=None)) as handle:

        async def notice_written() -> None:
            assert any(h.event == "notice_sent" for s in fakes.synced for h in s.history)

        await eventually(notice_written, timeout=60)
        await handle.execute_update(AppointmentJourney.no_show, StaffAction())  # a task + its cancels
        scheduled = []

        async def all_kinds_scheduled() -> None:
            scheduled[:] = [
                e.activity_task_scheduled_event_attributes
                async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            kinds = {a.activity_type.name for a in scheduled}
            # (Its DB steps, and a send's first attempt, are local activities: they run inside
            # its workflow tasks. That attempt is refused here, so the queued send is seen.)
            assert {"send_patient_message", "create_operator_task", "cancel_operator_tasks"} <= kinds

        await eventually(all_kinds_scheduled, timeout=60, interval=0.5)
    missing = [a.activity_type.name for a in scheduled if not a.heartbeat_timeout.ToTimedelta()]
    assert not missing, f"scheduled without a heartbeat timeout: {missing}"
    for fn in (
        AppointmentActivities.load_appointment_context,
        AppointmentActivities.sync_appointment,
        TaskActivities.create_operator_task,
        TaskActivities.cancel_operator_tasks,
    ):
        assert getattr(fn, "__heartbeats__", False), fn.__name__


async def test_a_heartbeating_activity_beats_while_it_runs() -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.heartbeat import HEARTBEAT_EVERY, heartbeats

    @heartbeats
    async def slow() -> str:
        await asyncio.sleep(HEARTBEAT_EVERY * 2.5)
        return "done"

    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    assert await env.run(slow) == "done"
    assert beats, "no heartbeat while the activity ran"


async def test_a_reply_shows_in_a_query_while_its_row_is_still_being_written(client: Client) -> None:
    """Issue 14 (reply -> visible): the row write after a patient's reply ran as a local
    activity, which holds the workflow task open, so the API's GET (a query) waited for the
    database write too. The write now runs after the task: the query answers at once."""
    fakes = Gated(hold_sync="patient_confirmed")
    async with journey(client, fakes, timedelta(days=30), JourneyPolicy(quiet_hours=None)) as handle:

        async def notice_written() -> None:
            assert any(h.event == "notice_sent" for s in fakes.synced for h in s.history)

        await eventually(notice_written, timeout=60)
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="Так, буду"))
        await asyncio.wait_for(fakes.held.wait(), 60)  # the reply's row write is under way (held)
        # No workflow task is open while the row is written (a local activity kept the reply's
        # task open until the write ended, or for 80 % of the task timeout: queries waited).
        described = (await handle.describe()).raw_description
        assert not described.HasField("pending_workflow_task"), described.pending_workflow_task
        assert [a.activity_type.name for a in described.pending_activities] == ["sync_appointment"]
        view = await handle.query(AppointmentJourney.view)
        assert view.stage == "confirmed"
        fakes.gate.set()

        async def row_confirmed() -> None:
            assert fakes.synced and fakes.synced[-1].stage == "confirmed", [s.stage for s in fakes.synced]

        await eventually(row_confirmed, timeout=30)


async def test_the_first_row_write_carries_the_booking_notice_and_news_is_not_held_by_it(client: Client) -> None:
    """Issue 14: the booking wrote the row (booked) before the journey started, so a journey
    whose notice is due at once writes its row once, after the notice (was: once before it,
    once after). News meanwhile (a reply while the notice is still on its way) is written at
    once, not held until the notice is out."""
    fakes = Gated(refuse_local=True)  # the notice's first attempt runs in the workflow task
    async with journey(client, fakes, timedelta(days=30), JourneyPolicy(quiet_hours=None)) as handle:

        async def notice_written() -> None:
            assert any(h.event == "notice_sent" for s in fakes.synced for h in s.history)

        await eventually(notice_written, timeout=60)
        await asyncio.sleep(1)  # nothing else is due: no further write
        assert len(fakes.synced) == 1, [[h.event for h in s.history] for s in fakes.synced]
        assert [h.event for h in fakes.synced[0].history] == ["booked", "notice_sent"]
        assert (await handle.query(AppointmentJourney.view)).stage == "booked"

    stuck = Gated(hold_send="booking_notice")
    async with journey(client, stuck, timedelta(days=30), JourneyPolicy(quiet_hours=None)) as handle:
        await asyncio.wait_for(stuck.held.wait(), 60)  # the notice is on its way (held)
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="Так, буду"))

        async def row_confirmed() -> None:
            assert stuck.synced and stuck.synced[-1].stage == "confirmed", [s.stage for s in stuck.synced]

        await eventually(row_confirmed, timeout=30)
        assert not stuck.sent  # the notice is still held


# The ask falls due 3 s after the booking and nothing else for ten minutes: it goes out inside
# the workflow task, carrying the row as it will be (ROW_WITH_ASK).
ASK_SOON = JourneyPolicy(reminder_lead=3600 - 3, reask_interval=600, confirm_deadline=600, quiet_hours=None)


async def test_an_asks_row_written_with_its_send_is_the_journeys_and_news_meanwhile_is_written_after(
    client: Client,
) -> None:
    """Issue 14 (ROW_WITH_ASK). The ask's send writes the row (the journey writes nothing
    after it) and that row is the journey's state. When the row cannot be written with the
    send (it moved on), or a reply arrived while the ask was out (held past a workflow-task
    heartbeat), the journey records the ask and writes its row itself, and the last row
    written is the journey's state."""
    fakes = Gated()
    async with journey(client, fakes, timedelta(hours=1), ASK_SOON) as handle:

        async def asked() -> None:
            assert fakes.beside == [True]

        await eventually(asked, timeout=60)
        await asyncio.sleep(1)
        view = await handle.query(AppointmentJourney.view)
        assert fakes.synced[-1] == view and view.asks_sent == 1, [s.history for s in fakes.synced]

    refused = Gated(row_revision=-1, keep_row=True)  # a row that moved on: never written with a send
    async with journey(client, refused, timedelta(hours=1), ASK_SOON) as handle:

        async def written_after() -> None:
            view = await handle.query(AppointmentJourney.view)
            assert refused.beside == [False] and view.asks_sent == 1
            assert refused.synced and refused.synced[-1] == view

        await eventually(written_after, timeout=60)

    news = Gated(hold_send="reminder")
    async with journey(client, news, timedelta(hours=1), ASK_SOON) as handle:
        await asyncio.wait_for(news.held.wait(), 60)  # the ask is on its way (held)
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="Так, буду"))

        async def confirmed_meanwhile() -> None:  # taken by the next workflow task (a heartbeat)
            assert (await handle.query(AppointmentJourney.view)).stage == "confirmed"

        await eventually(confirmed_meanwhile, timeout=30)
        news.gate.set()

        async def both_written() -> None:
            view = await handle.query(AppointmentJourney.view)
            # Offered with the send (written or not, as the reply's own write came first or
            # not): either way the journey's state after both is what the row shows last.
            assert view.asks_sent == 1 and len(news.beside) == 1
            assert news.synced[-1] == view and view.stage == "confirmed"
            assert [h.event for h in view.history][-1] == "ask_sent", view.history

        await eventually(both_written, timeout=30)


async def test_a_booking_notice_writes_the_journeys_first_row_onto_the_booked_one_and_news_meanwhile_after(
    client: Client,
) -> None:
    """Issue 14 (ROW_WITH_NOTICE). The booking wrote the row (journey revision 0): the notice's
    send writes the journey's first row onto it (booked, notice_sent) and the journey writes
    nothing after. With news while the notice is out (a reply, taken by the workflow task's
    heartbeat), the journey records the notice after the reply and writes its row itself:
    whichever write came first, the last row written is the journey's state."""
    fakes = Gated(row_revision=0)
    async with journey(client, fakes, timedelta(days=30), JourneyPolicy(quiet_hours=None)) as handle:

        async def noticed() -> None:
            assert fakes.beside == [True]

        await eventually(noticed, timeout=60)
        await asyncio.sleep(1)  # nothing else is due: no further write
        view = await handle.query(AppointmentJourney.view)
        assert fakes.synced == [view], [[h.event for h in s.history] for s in fakes.synced]
        assert [h.event for h in view.history] == ["booked", "notice_sent"] and view.journey_revision == 2

    news = Gated(row_revision=0, hold_send="booking_notice")
    async with journey(client, news, timedelta(days=30), JourneyPolicy(quiet_hours=None)) as handle:
        await asyncio.wait_for(news.held.wait(), 60)  # the notice is on its way (held)
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="Так, буду"))

        async def confirmed_meanwhile() -> None:
            assert (await handle.query(AppointmentJourney.view)).stage == "confirmed"

        await eventually(confirmed_meanwhile, timeout=30)
        news.gate.set()

        async def both_written() -> None:
            view = await handle.query(AppointmentJourney.view)
            # Offered with the send (written or not, as the reply's own write came first or
            # not; on a box slow enough to hold it past LOCAL_SEND_TIMEOUT, the queued attempt
            # sends it without the row): either way the journey's state after both is what the
            # row shows last, and the notice went out once.
            assert len(news.beside) <= 1 and [k for _, k in news.sent] == ["booking_notice"]
            assert news.synced[-1] == view and view.stage == "confirmed"
            assert [h.event for h in view.history][-1] == "notice_sent", view.history

        await eventually(both_written, timeout=30)
