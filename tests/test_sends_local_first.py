"""Issue 14: a journey's message goes out inside the workflow task that decided to send it (a
local activity) when nothing else of the journey falls due meanwhile; a booking notice is then
one workflow task, not two. That first attempt never waits on the provider: paced out or
refused, it hands the same message (same key) to a queued activity, and the patient gets it
once. With a timer close by, the send goes to the queue at once (a send never holds a timer:
tests/test_appointment_journey.py::test_journey_db_steps_are_local_activities books inside
that window)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from contracts.common import OutboundMessage
from core.deps import Deps
from core.settings import Settings
from core.temporal import workflow_runner
from models.appointment import Appointment
from models.core import MessageLog, Role
from providers import ProviderPaced, post
from providers.pacing import PACER, Pace, WouldWait, waiting_at_most
from tests.support.api import Api
from tests.support.appointments import FAST, make_clinic, phone
from tests.support.fake_providers import Rig, provider_rig
from tests.support.live import eventually, running_worker
from workflows.appointment import AppointmentJourney

# Nothing but the notice is due for an hour: the ask comes 1 h before a visit in 3 h.
CALM = {**FAST, "reminder_lead": 3600, "confirm_deadline": 1800}


@pytest.fixture
async def rig(settings: Settings, deps: Deps, client: Client) -> AsyncIterator[Rig]:
    tq = f"local-first-{uuid.uuid4().hex[:8]}"
    async with provider_rig(settings, deps, client, task_queue=tq) as r, running_worker(client, r.deps, tq):
        yield r


async def _book(rig: Rig, api: Api, policy: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A clinic, doctor and SMS patient through the rig's API; a visit in 3 hours. (view, phone)"""
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30) as http:
        to = phone()  # the rig's own API (its provider fakes), not the session's
        clinic = await make_clinic(Api(http, api.tokens), patient={"phone": to}, **policy)
        clinic_id, doctor_id, patient_id = clinic["id"], clinic["doctor_id"], clinic["patient_id"]
        r = await http.post(
            "/v1/appointments",
            headers=api.headers(Role.front_desk),
            json={
                "patient_id": patient_id,
                "clinic_id": clinic_id,
                "doctor_id": doctor_id,
                "starts_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                "duration_minutes": 30,
                "service": "Check-up",
            },
        )
        assert r.status_code == 201, r.text
        return r.json(), to


async def _history(client: Client, workflow_id: str) -> tuple[list[str], int]:
    """(activity types scheduled through the task queue, workflow tasks completed)"""
    scheduled, completed = [], 0
    async for e in client.get_workflow_handle(workflow_id).fetch_history_events():
        if e.HasField("activity_task_scheduled_event_attributes"):
            scheduled.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        completed += e.HasField("workflow_task_completed_event_attributes")
    return scheduled, completed


async def _noticed(rig: Rig, api: Api, appt: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30) as http:

        async def shown() -> None:
            r = await http.get(f"/v1/appointments/{appt['id']}", headers=api.headers(Role.operator))
            assert "notice_sent" in [h["event"] for h in r.json()["history"]], r.json()["history"]

        await eventually(shown, timeout=60)


def _texts(rig: Rig, to: str) -> tuple[int, int]:
    """(requests the fake Twilio got for this phone, how many it delivered)"""
    tried = [x for x in rig.fake.sent("twilio") if x.form and x.form.get("To") == to]
    return len(tried), sum(x.ok for x in tried)


async def _cancel(rig: Rig, api: Api, appt: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30) as http:
        r = await http.post(
            f"/v1/appointments/{appt['id']}/cancel", headers=api.headers(Role.front_desk), json={"reason": "test"}
        )
        assert r.status_code == 200, r.text


async def test_a_booking_notice_with_nothing_else_due_is_one_workflow_task(rig: Rig, api: Api, client: Client) -> None:
    appt, to = await _book(rig, api, CALM)
    await _noticed(rig, api, appt)

    async def one_task() -> None:
        scheduled, completed = await _history(client, appt["workflow_id"])
        assert "send_patient_message" not in scheduled, scheduled
        assert completed == 1, completed  # context, notice and row write in one workflow task

    await eventually(one_task, timeout=30)
    assert _texts(rig, to) == (1, 1)
    await _cancel(rig, api, appt)


async def test_a_paced_first_attempt_hands_the_message_to_a_queued_one(rig: Rig, api: Api, client: Client) -> None:
    key = f"twilio:{rig.settings.twilio_account_sid}:Messages"
    PACER._next[key] = time.monotonic() + 3  # the sender's next slot is 3 s off
    try:
        appt, to = await _book(rig, api, CALM)
        await _noticed(rig, api, appt)
    finally:
        PACER._next.pop(key, None)
    scheduled, _ = await _history(client, appt["workflow_id"])
    assert scheduled.count("send_patient_message") == 1, scheduled  # the queued attempt waited
    assert _texts(rig, to) == (1, 1)  # the paced attempt never reached the provider
    await _cancel(rig, api, appt)

    # Such an attempt looks at the sender's next slot before it writes anything.
    PACER._next[key] = time.monotonic() + 3
    msg = OutboundMessage(
        idempotency_key=f"test-paced-{uuid.uuid4().hex}",
        patient_id=appt["patient_id"],
        clinic_id=appt["clinic_id"],
        kind="booking_notice",
        text="hello",
    )
    try:
        with waiting_at_most(1.0), pytest.raises(ApplicationError) as e:
            await rig.messaging._send_message(msg)
    finally:
        PACER._next.pop(key, None)
    assert e.value.type == "ProviderPaced"
    async with rig.deps.sessions() as s:
        rows = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == msg.idempotency_key))).all()
    assert rows == []


async def test_a_refused_first_attempt_is_retried_by_a_queued_one_and_sent_once(
    rig: Rig, api: Api, client: Client
) -> None:
    rig.fake.fail_next("twilio", 503, {"message": "fake outage"})
    appt, to = await _book(rig, api, CALM)
    await _noticed(rig, api, appt)
    scheduled, _ = await _history(client, appt["workflow_id"])
    assert scheduled.count("send_patient_message") == 1, scheduled
    assert _texts(rig, to) == (2, 1)  # the 503, then the queued attempt's delivery
    await _cancel(rig, api, appt)


async def test_a_send_that_may_not_wait_is_refused_without_taking_the_slot(rig: Rig) -> None:
    pace = Pace(f"test:{uuid.uuid4().hex}", rate=0.5)  # one send per 2 s
    await PACER.wait(pace)  # takes the slot now: the next is 2 s off
    slot = PACER._next[pace.key]
    with waiting_at_most(1.0):
        with pytest.raises(WouldWait):
            await PACER.wait(pace)
        with pytest.raises(ProviderPaced) as e:
            await post("sms", rig.deps.http, f"{rig.fake.url}/nowhere", pace=pace)
    assert not e.value.maybe_sent and e.value.retry_after and e.value.retry_after > 1
    assert PACER._next[pace.key] == slot  # nothing reserved: a send that waits gets that slot
    assert not [x for x in rig.fake.requests if x.path.endswith("/nowhere")]


# The ask falls due 8 s after the booking, and nothing else for a minute after it: it goes out
# inside the workflow task (the notice, with the ask so close, through the queue).
ASK_SOON = {
    **FAST,
    "reminder_lead": 3 * 3600 - 8,
    "reask_interval": 60,
    "voice_call_after": 60,
    "confirm_deadline": 3600,
}


async def _local_activities(client: Client, workflow_id: str) -> list[str]:
    """The activity type of each local activity the journey ran, in order (its markers)."""
    out = []
    async for e in client.get_workflow_handle(workflow_id).fetch_history_events():
        m = e.marker_recorded_event_attributes
        if e.HasField("marker_recorded_event_attributes") and m.marker_name == "core_local_activity":
            out.append(json.loads(m.details["data"].payloads[0].data)["activity_type"])
    return out


async def test_an_ask_sent_inside_the_workflow_task_writes_the_row_in_the_sends_own_transaction(
    rig: Rig, api: Api, client: Client
) -> None:
    """Issue 14 (ROW_WITH_ASK): the ask's row write (asks_sent, its history entry) is made by
    the send itself, in the transaction that records the message as sent, and the journey
    then has nothing left to write: one local activity and one transaction fewer per ask. The
    row and the journey agree to the entry's timestamp, the patient gets each message once,
    and the history replays."""
    appt, to = await _book(rig, api, ASK_SOON)
    wid = appt["workflow_id"]

    async def asked() -> None:
        async with rig.deps.sessions() as s:
            row = await s.get(Appointment, appt["id"])
        assert row is not None and row.asks_sent == 1, row and row.history

    await eventually(asked, timeout=60)
    await asyncio.sleep(1)  # nothing else is due: no further write
    ran = await _local_activities(client, wid)
    assert "send_appointment_message" in ran, ran
    assert ran[ran.index("send_appointment_message") + 1 :] == [], ran  # no row write after it
    live = await client.get_workflow_handle(wid).query(AppointmentJourney.view)
    async with rig.deps.sessions() as s:
        row = await s.get(Appointment, appt["id"])
    assert row is not None
    assert row.history == [{"at": h.at.isoformat(), "event": h.event, "stage": h.stage} for h in live.history]
    assert live.history[-1].event == "ask_sent" and row.asks_sent == live.asks_sent == 1
    assert row.journey_revision == live.journey_revision
    assert _texts(rig, to) == (2, 2)  # the notice and the ask, once each
    await _cancel(rig, api, appt)

    async def cancelled() -> None:  # the next change is written as before
        async with rig.deps.sessions() as s:
            row = await s.get(Appointment, appt["id"])
        assert row is not None and row.stage == "cancelled"

    await eventually(cancelled, timeout=30)
    history = await client.get_workflow_handle(wid).fetch_history()
    await Replayer(
        workflows=[AppointmentJourney], workflow_runner=workflow_runner(), data_converter=client.data_converter
    ).replay_workflow(history)


async def test_a_booking_notice_sent_inside_the_workflow_task_writes_the_journeys_first_row_with_it(
    rig: Rig, api: Api, client: Client
) -> None:
    """Issue 14 (ROW_WITH_NOTICE): the booking wrote the row as the journey starts; the notice
    carries the journey's first row (its `booked` entry and `notice_sent`) onto that row, in
    the transaction that records the notice as sent. No row write follows: the journey's
    first workflow task runs two local activities (its context, the notice), not three. The row
    and the journey agree to the timestamp, the next change is written as before, and the
    history replays."""
    appt, to = await _book(rig, api, CALM)
    wid = appt["workflow_id"]

    async def noticed() -> None:
        async with rig.deps.sessions() as s:
            row = await s.get(Appointment, appt["id"])
        assert row is not None and [h["event"] for h in row.history] == ["booked", "notice_sent"], row and row.history

    await eventually(noticed, timeout=60)
    await asyncio.sleep(1)  # nothing else is due for an hour: no further write
    assert await _local_activities(client, wid) == ["load_appointment_context", "send_appointment_message"]
    live = await client.get_workflow_handle(wid).query(AppointmentJourney.view)
    async with rig.deps.sessions() as s:
        row = await s.get(Appointment, appt["id"])
    assert row is not None
    assert row.history == [{"at": h.at.isoformat(), "event": h.event, "stage": h.stage} for h in live.history]
    assert row.journey_revision == live.journey_revision == 2
    assert _texts(rig, to) == (1, 1)
    await _cancel(rig, api, appt)

    async def cancelled() -> None:
        async with rig.deps.sessions() as s:
            row = await s.get(Appointment, appt["id"])
        assert row is not None and row.stage == "cancelled" and row.journey_revision > 2

    await eventually(cancelled, timeout=30)
    history = await client.get_workflow_handle(wid).fetch_history()
    await Replayer(
        workflows=[AppointmentJourney], workflow_runner=workflow_runner(), data_converter=client.data_converter
    ).replay_workflow(history)
