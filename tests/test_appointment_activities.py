"""Appointment activities alone, and one workflow-logic case that needs a provider outcome
the sandbox cannot produce (no channel at all): there, sends are stand-ins *by name*."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities import build_activities
from activities.appointments import AppointmentActivities
from contracts.appointment import AppointmentInput, AppointmentSnapshot, HistoryEntry, appointment_workflow_id
from contracts.common import OutboundMessage, SendResult, VoiceCall
from contracts.policy import JourneyPolicy
from core.deps import Deps
from core.temporal import workflow_runner
from models.appointment import Appointment
from tests.support.api import Api
from tests.support.appointments import make_clinic
from tests.support.live import eventually
from workflows.appointment import AppointmentJourney


async def test_sync_appointment_is_an_idempotent_upsert(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    aid = uuid.uuid4().hex
    start = datetime.now(UTC) + timedelta(hours=2)
    snap = AppointmentSnapshot(
        appointment_id=aid,
        workflow_id=appointment_workflow_id(aid),
        clinic_id=clinic["id"],
        doctor_id=clinic["doctor_id"],
        patient_id=clinic["patient_id"],
        service="X",
        plan_id="plan-1",
        stage="confirmed",
        version=2,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        duration_minutes=30,
        asks_sent=2,
        voice_calls=0,
        nps=None,
        cancel_reason=None,
        history=[HistoryEntry(at=datetime.now(UTC), event="booked", stage="booked")],
    )
    env = ActivityEnvironment()
    acts = AppointmentActivities(deps)
    await env.run(acts.sync_appointment, snap)  # no row yet (a plan's child): inserted
    await env.run(acts.sync_appointment, snap)  # the same again: no change, no error
    async with deps.sessions() as s:
        row = await s.get(Appointment, aid)
    assert row is not None and row.stage == "confirmed" and row.version == 2
    assert row.asks_sent == 2 and row.plan_id == "plan-1"
    assert [h["event"] for h in row.history] == ["booked"]


async def test_no_channel_goes_straight_to_the_voice_call(api: Api, client: Client, deps: Deps) -> None:
    calls: list[str] = []

    @activity.defn(name="send_patient_message")
    async def no_messenger(msg: OutboundMessage) -> SendResult:
        return SendResult("no_channel")

    @activity.defn(name="place_voice_call")
    async def robot(call: VoiceCall) -> SendResult:
        calls.append(call.idempotency_key)
        return SendResult("sent", "voice", "call-1")

    real = [
        a
        for a in build_activities(deps)
        if getattr(a, "__temporal_activity_definition").name not in ("send_patient_message", "place_voice_call")
    ]
    clinic = await make_clinic(api)
    tq = f"appt-logic-{uuid.uuid4().hex[:8]}"
    aid = uuid.uuid4().hex
    async with Worker(
        client,
        task_queue=tq,
        workflows=[AppointmentJourney],
        workflow_runner=workflow_runner(),
        activities=[*real, no_messenger, robot],
    ):
        handle = await client.start_workflow(
            AppointmentJourney.run,
            AppointmentInput(
                appointment_id=aid,
                clinic_id=clinic["id"],
                patient_id=clinic["patient_id"],
                doctor_id=clinic["doctor_id"],
                starts_at=datetime.now(UTC) + timedelta(minutes=5),
                duration_minutes=30,
                service="Check-up",
                timezone="Europe/Kyiv",
                policy=JourneyPolicy(
                    reminder_lead=3600, reask_interval=60, voice_call_after=60, confirm_deadline=5, quiet_hours=None
                ),
            ),
            id=appointment_workflow_id(aid),
            task_queue=tq,
        )

        async def called() -> None:
            v = await handle.query(AppointmentJourney.view)
            assert v.voice_calls == 1 and v.asks_sent == 0
            assert [h.event for h in v.history][-2:] == ["ask_no_channel", "voice_call"]

        await eventually(called)
        assert calls == [f"{appointment_workflow_id(aid)}:v1:call-1"]
        await handle.execute_update(AppointmentJourney.cancel, _cancel())
        await handle.result()


def _cancel():  # type: ignore[no-untyped-def]
    from contracts.appointment import CancelRequest

    return CancelRequest(reason="test over")
