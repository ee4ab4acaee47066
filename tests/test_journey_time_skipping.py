"""A whole appointment journey at the DEFAULT policy's real timings (24 h, 30 min, +1 min,
1 h, 3 days), run in seconds on Temporal's time-skipping test server, with every activity
replaced by name. Complements the dev-server tests, which use compressed policies.

The server is the one Temporal publishes on Maven Central (io.temporal:temporal-test-server,
Java); scripts/bootstrap.sh installs it and its launcher .tools/bin/temporal-test-server.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.appointment import (
    APPOINTMENT_REPLY_SIGNAL,
    AppointmentContext,
    AppointmentInput,
    AppointmentOutcome,
    AppointmentSend,
    AppointmentSnapshot,
    ContextRequest,
    StaffAction,
    appointment_workflow_id,
)
from contracts.common import CancelTasks, OutboundMessage, PatientReply, SendResult, TaskRef, TaskRequest, VoiceCall
from contracts.policy import JourneyPolicy
from core.search_attributes import ALL
from core.temporal import workflow_runner
from tests.support.api import TEST_SERVER_BIN
from workflows.appointment import AppointmentJourney

TEST_SERVER = TEST_SERVER_BIN
KYIV = "Europe/Kyiv"


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    assert TEST_SERVER.exists(), "run scripts/bootstrap.sh: it installs the time-skipping test server"
    e = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER))
    await e.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=e.client.namespace,
            search_attributes={k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in ALL},
        )
    )
    try:
        yield e
    finally:
        await e.shutdown()


@dataclass
class Fakes:
    """Every activity the journey calls, by name, recording (workflow time, what)."""

    env: WorkflowEnvironment
    sent: list[tuple[datetime, str]] = field(default_factory=list)
    calls: list[datetime] = field(default_factory=list)
    tasks: list[tuple[datetime, str]] = field(default_factory=list)
    synced: list[AppointmentSnapshot] = field(default_factory=list)
    row_revision: int | None = None  # the journey revision the row shows (as the DB's condition)

    def activities(self) -> list[object]:
        @activity.defn(name="load_appointment_context")
        async def load_context(req: ContextRequest) -> AppointmentContext:
            return AppointmentContext(clinic_name="Clinic", doctor_name="Dr", link="http://x/a")

        @activity.defn(name="sync_appointment")
        async def sync(snap: AppointmentSnapshot) -> None:
            self.synced.append(snap)
            self.row_revision = snap.journey_revision

        @activity.defn(name="send_patient_message")
        async def send(msg: OutboundMessage) -> SendResult:
            self.sent.append((await self.env.get_current_time(), msg.kind))
            return SendResult(status="sent", channel="sms", provider_message_id=uuid.uuid4().hex)

        @activity.defn(name="send_appointment_message")
        async def send_with_row(req: AppointmentSend) -> SendResult:
            result = await send(req.message)
            if self.row_revision != req.row_was:  # the row moved on: not written
                return result
            await sync(req.row)
            return dataclasses.replace(result, row_written=True)

        @activity.defn(name="place_voice_call")
        async def call(c: VoiceCall) -> SendResult:
            self.calls.append(await self.env.get_current_time())
            return SendResult(status="sent", channel="voice")

        @activity.defn(name="create_operator_task")
        async def task(t: TaskRequest) -> TaskRef:
            self.tasks.append((await self.env.get_current_time(), t.kind))
            return TaskRef(task_id=uuid.uuid4().hex, created=True)

        @activity.defn(name="cancel_operator_tasks")
        async def cancel(c: CancelTasks) -> int:
            return 0

        return [load_context, sync, send, send_with_row, call, task, cancel]

    def kinds(self) -> list[str]:
        return [k for _, k in self.sent]

    def at(self, kind: str) -> datetime:
        return next(t for t, k in self.sent if k == kind)


async def _start(env: WorkflowEnvironment, fakes: Fakes, starts_in: timedelta) -> tuple[WorkflowHandle, datetime, str]:
    now = await env.get_current_time()
    # A visit at 12:00 Kyiv time (outside quiet hours), `starts_in` ahead.
    day = (now + starts_in).astimezone(UTC).date()
    start = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)  # 12:00 in Kyiv (EEST) / 11:00 (EET)
    aid = uuid.uuid4().hex
    inp = AppointmentInput(
        appointment_id=aid,
        clinic_id="c1",
        patient_id="p1",
        doctor_id="d1",
        starts_at=start,
        duration_minutes=30,
        service="Consultation",
        timezone=KYIV,
        policy=JourneyPolicy(),  # the defaults: real lengths
        booked_at=now,
    )
    handle = await env.client.start_workflow(
        AppointmentJourney.run, inp, id=appointment_workflow_id(aid), task_queue=f"ts-{aid}"
    )
    return handle, start, aid


def close(a: datetime, b: datetime) -> bool:
    """Equal up to the few milliseconds an activity starts after its timer fired."""
    return abs(a - b) < timedelta(seconds=5)


async def _skip_to(env: WorkflowEnvironment, when: datetime) -> None:
    now = await env.get_current_time()
    if when > now:
        await env.sleep(when - now)


async def test_default_policy_journey_from_the_ask_to_the_survey_in_seconds(env: WorkflowEnvironment) -> None:
    fakes = Fakes(env)
    handle, start, aid = await _start(env, fakes, timedelta(days=3))
    async with Worker(
        env.client,
        task_queue=f"ts-{aid}",
        workflows=[AppointmentJourney],
        activities=fakes.activities(),
        workflow_runner=workflow_runner(),
    ):
        # Booking notice at once; the day-before ask exactly reminder_lead (24 h) before.
        await _skip_to(env, start - timedelta(hours=24) + timedelta(minutes=1))
        assert fakes.kinds()[:2] == ["booking_notice", "reminder"], fakes.kinds()
        assert close(fakes.at("reminder"), start - timedelta(hours=24))

        # The patient answers "yes": confirmed, no re-ask follows (2 h later nothing new).
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="Так, буду"))
        await _skip_to(env, start - timedelta(hours=21))
        assert fakes.kinds() == ["booking_notice", "reminder"]
        assert (await handle.query(AppointmentJourney.view)).stage == "confirmed"

        # The visit: check-in and finish through the updates, at the visit's time.
        await _skip_to(env, start)
        await handle.execute_update(AppointmentJourney.check_in, StaffAction(by="desk"))
        await _skip_to(env, start + timedelta(minutes=25))
        finished = await handle.execute_update(AppointmentJourney.finish, StaffAction(by="doc"))
        assert finished.stage == "finished"

        # The survey goes feedback_delay (1 h) after the visit ended.
        await _skip_to(env, start + timedelta(minutes=25, hours=1, seconds=30))
        assert "survey" in fakes.kinds(), fakes.kinds()
        assert close(fakes.at("survey"), start + timedelta(minutes=25, hours=1))

        # A score ends the journey; nobody raised a task along the way.
        await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sms", kind="text", text="10"))
        outcome: AppointmentOutcome = await handle.result()
    assert (outcome.stage, outcome.nps) == ("finished", 10)
    assert fakes.tasks == []
    assert fakes.synced[-1].stage == "finished" and fakes.synced[-1].nps == 10


async def test_silence_at_default_policy_walks_reasks_call_and_deadline(env: WorkflowEnvironment) -> None:
    """Nobody answers: the ask, three re-asks 2 h apart, the robot call after the last,
    the operator task at start - 30 min, then no-show at start + 1 min (policy defaults)."""
    fakes = Fakes(env)
    handle, start, aid = await _start(env, fakes, timedelta(days=2))
    async with Worker(
        env.client,
        task_queue=f"ts-{aid}",
        workflows=[AppointmentJourney],
        activities=fakes.activities(),
        workflow_runner=workflow_runner(),
    ):
        outcome: AppointmentOutcome = await handle.result()
    ask = start - timedelta(hours=24)
    asks = [t for t, k in fakes.sent if k in ("reminder", "reask")]
    # The re-asks that would fall into quiet hours (21:00-08:00 Kyiv) wait for 08:00.
    assert close(asks[0], ask)
    assert len(asks) == 4 and all(
        b - a >= timedelta(hours=2) - timedelta(seconds=5) for a, b in zip(asks, asks[1:], strict=False)
    )
    # The robot call follows the last re-ask, fitted before the deadline (issue 16's plan_contacts).
    assert len(fakes.calls) == 1 and asks[-1] + timedelta(hours=1) <= fakes.calls[0] < start - timedelta(minutes=30)
    assert [k for _, k in fakes.tasks] == ["unconfirmed", "no_show_rebook"]
    assert close(fakes.tasks[0][0], start - timedelta(minutes=30))
    assert close(fakes.tasks[1][0], start + timedelta(minutes=1))
    assert outcome.stage == "no_show"
