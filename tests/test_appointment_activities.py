"""Appointment activities alone, and one workflow-logic case that needs a provider outcome
the sandbox cannot produce (no channel at all): there, sends are stand-ins *by name*."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities import build_activities
from activities.appointments import AppointmentActivities
from contracts.appointment import (
    AppointmentInput,
    AppointmentSend,
    AppointmentSnapshot,
    HistoryEntry,
    appointment_workflow_id,
)
from contracts.common import OutboundMessage, Question, SendResult, VoiceCall
from contracts.policy import JourneyPolicy
from core.deps import Deps
from core.temporal import workflow_runner
from models.appointment import Appointment
from models.core import MessageLog
from tests.support.api import Api
from tests.support.appointments import make_clinic
from tests.support.live import eventually
from workflows.appointment import AppointmentJourney


def _snapshot(clinic: dict[str, Any], start: datetime, **fields: Any) -> AppointmentSnapshot:
    """A new appointment of `clinic` at `start`, booked (other `fields` as given)."""
    aid = uuid.uuid4().hex
    defaults: dict[str, Any] = {
        "plan_id": None,
        "stage": "booked",
        "version": 1,
        "asks_sent": 0,
        "history": [HistoryEntry(at=datetime.now(UTC), event="booked", stage="booked")],
    }
    return AppointmentSnapshot(
        **{
            "appointment_id": aid,
            "workflow_id": appointment_workflow_id(aid),
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "patient_id": clinic["patient_id"],
            "service": "X",
            "starts_at": start,
            "ends_at": start + timedelta(minutes=30),
            "duration_minutes": 30,
            "voice_calls": 0,
            "nps": None,
            "cancel_reason": None,
            **defaults,
            **fields,
        }
    )


async def test_sync_appointment_is_an_idempotent_upsert(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    snap = _snapshot(
        clinic, datetime.now(UTC) + timedelta(hours=2), plan_id="plan-1", stage="confirmed", version=2, asks_sent=2
    )
    aid = snap.appointment_id
    env = ActivityEnvironment()
    acts = AppointmentActivities(deps)
    await env.run(acts.sync_appointment, snap)  # no row yet (a plan's child): inserted
    await env.run(acts.sync_appointment, snap)  # the same again: no change, no error
    async with deps.sessions() as s:
        row = await s.get(Appointment, aid)
    assert row is not None and row.stage == "confirmed" and row.version == 2
    assert row.asks_sent == 2 and row.plan_id == "plan-1"
    assert [h["event"] for h in row.history] == ["booked"]


async def test_an_asks_row_is_written_with_its_send_only_onto_the_row_it_was_computed_from(
    api: Api, deps: Deps
) -> None:
    """Issue 14 (ROW_WITH_ASK): `send_appointment_message` writes the journey's row in the
    commit that records the message as sent, and only when the row still shows the journey
    revision, stage, version and time the row was computed from; otherwise the message still
    goes out (once) and the result says the row was not written (the journey then writes it
    itself). A repeated attempt of a send that went out writes nothing."""
    clinic = await make_clinic(api)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    snap = _snapshot(clinic, start, journey_revision=3)
    aid, booked = snap.appointment_id, snap.history[0]
    env = ActivityEnvironment()
    acts = AppointmentActivities(deps)
    await env.run(acts.sync_appointment, snap)

    def ask(n: int, was: int, **row: object) -> AppointmentSend:
        entry = HistoryEntry(at=datetime.now(UTC), event="ask_sent" if n == 1 else "reask_sent", stage="booked")
        after = dataclasses.replace(snap, asks_sent=n, history=[booked, entry], journey_revision=was + 1, **row)
        question = Question("confirmation", "appointment", aid, ["yes_no"], start, subject_version=1)
        message = OutboundMessage(
            idempotency_key=f"{snap.workflow_id}:v1:ask-{uuid.uuid4().hex[:6]}",
            patient_id=clinic["patient_id"],
            clinic_id=clinic["id"],
            kind="reminder",
            text="Please confirm",
            subject_id=aid,
            workflow_id=snap.workflow_id,
            question=question,
        )
        return AppointmentSend(message=message, row=after, row_was=was)

    async def row() -> Appointment:
        async with deps.sessions() as s:
            found = await s.get(Appointment, aid)
        assert found is not None
        return found

    async def sent(key: str) -> str:
        async with deps.sessions() as s:
            log = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == key))).one()
        return log.status

    # The row moved on (another write since): sent, the row untouched.
    stale = ask(1, was=2)
    result = await env.run(acts.send_appointment_message, stale)
    assert (result.status, result.row_written) == ("sent", False)
    assert await sent(stale.message.idempotency_key) == "sent"
    assert ((await row()).asks_sent, (await row()).journey_revision) == (0, 3)
    # The API moved the visit meanwhile (its new time is not undone): not written either.
    moved = ask(1, was=3, starts_at=start + timedelta(hours=1))
    assert (await env.run(acts.send_appointment_message, moved)).row_written is False
    assert (await row()).starts_at == start
    # The row as computed: written with the send.
    fresh = ask(1, was=3)
    result = await env.run(acts.send_appointment_message, fresh)
    assert (result.status, result.row_written) == ("sent", True)
    written = await row()
    assert (written.asks_sent, written.journey_revision) == (1, 4)
    assert [h["event"] for h in written.history] == ["booked", "ask_sent"]
    assert written.history == AppointmentSnapshot.columns(fresh.row)["history"]
    # The same send again (a second attempt): nothing sent again, nothing written.
    again = await env.run(acts.send_appointment_message, fresh)
    assert (again.status, again.duplicate, again.row_written) == ("sent", True, False)
    # A re-ask computed from revision 4 (the row the last one wrote): written.
    reask = ask(2, was=4)
    assert (await env.run(acts.send_appointment_message, reask)).row_written is True
    assert ((await row()).asks_sent, (await row()).journey_revision) == (2, 5)


async def test_no_channel_goes_straight_to_the_voice_call(api: Api, client: Client, deps: Deps) -> None:
    calls: list[str] = []

    @activity.defn(name="send_patient_message")
    async def no_messenger(msg: OutboundMessage) -> SendResult:
        return SendResult("no_channel")

    @activity.defn(name="send_appointment_message")
    async def no_messenger_either(req: AppointmentSend) -> SendResult:
        return SendResult("no_channel")

    @activity.defn(name="place_voice_call")
    async def robot(call: VoiceCall) -> SendResult:
        calls.append(call.idempotency_key)
        return SendResult("sent", "voice", "call-1")

    real = [
        a
        for a in build_activities(deps)
        if getattr(a, "__temporal_activity_definition").name
        not in ("send_patient_message", "send_appointment_message", "place_voice_call")
    ]
    clinic = await make_clinic(api)
    tq = f"appt-logic-{uuid.uuid4().hex[:8]}"
    aid = uuid.uuid4().hex
    async with Worker(
        client,
        task_queue=tq,
        workflows=[AppointmentJourney],
        workflow_runner=workflow_runner(),
        activities=[*real, no_messenger, no_messenger_either, robot],
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
