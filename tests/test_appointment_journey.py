"""The appointment journey end to end: live API, real worker and messaging activities with
the sandbox provider, a real Temporal dev server. Policies are compressed to seconds."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from contracts.appointment import AppointmentOutcome, appointment_workflow_id
from core.deps import Deps
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import (
    book,
    events,
    make_clinic,
    reply,
    sent,
    signal_reply,
    state,
    tasks,
)
from tests.support.live import eventually


async def _asks(deps: Deps, aid: str) -> list[str]:
    return [m.kind for m in await sent(deps, aid) if m.kind in ("reminder", "reask")]


async def test_confirm_at_first_ask(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, reask_interval=30)
    appt = await book(api, clinic)
    assert appt["stage"] == "booked" and appt["fhir_status"] == "booked"
    assert appt["workflow_id"] == appointment_workflow_id(appt["id"])

    async def asked() -> None:
        v = await state(api, appt["id"])
        assert v["asks_sent"] == 1 and v["live"]

    await eventually(asked)
    kinds = [m.kind for m in await sent(deps, appt["id"])]
    assert kinds[:2] == ["booking_notice", "reminder"]

    await reply(api, clinic, "Да, буду")

    async def confirmed() -> None:
        v = await state(api, appt["id"])
        assert v["stage"] == "confirmed" and v["fhir_status"] == "booked"
        assert v["asks_sent"] == 1
        assert "patient_confirmed" in events(v)

    await eventually(confirmed)
    await _cancel(api, appt["id"])


async def test_confirm_after_two_reasks(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, reask_interval=1.0)
    appt = await book(api, clinic)

    async def three_asks() -> None:
        assert (await state(api, appt["id"]))["asks_sent"] == 3

    await eventually(three_asks, interval=0.05)
    await reply(api, clinic, "yes")
    await eventually(lambda: _stage(api, appt["id"], "confirmed"))
    await asyncio.sleep(2.5)  # past the next re-ask time: nothing more goes out
    v = await state(api, appt["id"])
    assert v["asks_sent"] == 3 and v["voice_calls"] == 0
    assert await _asks(deps, appt["id"]) == ["reminder", "reask", "reask"]
    await _cancel(api, appt["id"])


async def test_silence_reasks_then_voice_call_then_digit_1(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, reask_interval=0.5, voice_call_after=0.5)
    appt = await book(api, clinic)

    async def called() -> None:
        v = await state(api, appt["id"])
        assert v["asks_sent"] == 4 and v["voice_calls"] == 1

    await eventually(called)
    kinds = [m.kind for m in await sent(deps, appt["id"])]
    assert kinds == ["booking_notice", "reminder", "reask", "reask", "reask", "voice_call"]
    await reply(api, clinic, digit="1")
    await eventually(lambda: _stage(api, appt["id"], "confirmed"))
    await _cancel(api, appt["id"])


async def test_decline_raises_task(api: Api, client: Client) -> None:
    clinic = await make_clinic(api, reask_interval=30)
    appt = await book(api, clinic)
    await eventually(lambda: _asks_sent(api, appt["id"], 1))
    await reply(api, clinic, "Не смогу")

    async def declined() -> None:
        v = await state(api, appt["id"])
        assert v["stage"] == "needs_clarification" and "patient_declined" in events(v)
        assert [t["kind"] for t in await tasks(api, appt["id"])] == ["declined"]

    await eventually(declined)
    # "cancel" is a carrier opt-out word, never a decline: the journey reads it as a message
    # to a person (and the inbound routing treats it as an opt-out before it even gets here).
    await signal_reply(client, appt["id"], kind="text", text="cancel")

    async def unread() -> None:
        kinds = sorted(t["kind"] for t in await tasks(api, appt["id"]))
        assert kinds == ["declined", "unread_message"]
        assert (await state(api, appt["id"]))["stage"] == "needs_clarification"

    await eventually(unread)
    await _cancel(api, appt["id"])
    # Cancelling closes the appointment's open tasks.
    await eventually(lambda: _no_open_tasks(api, appt["id"]))


async def test_silence_deadline_then_no_show(api: Api, deps: Deps, client: Client) -> None:
    clinic = await make_clinic(api, reask_interval=60, confirm_deadline=6, no_show_grace=1)
    appt = await book(api, clinic, in_seconds=10)

    async def unconfirmed() -> None:
        v = await state(api, appt["id"])
        assert v["stage"] == "needs_clarification" and "deadline_unconfirmed" in events(v)
        assert [t["kind"] for t in await tasks(api, appt["id"])] == ["unconfirmed"]

    await eventually(unconfirmed)

    async def no_show() -> None:
        v = await state(api, appt["id"])
        assert v["stage"] == "no_show" and v["fhir_status"] == "noshow"
        assert not v["live"]  # the journey ended: the answer comes from the database
        assert [t["kind"] for t in await tasks(api, appt["id"])] == ["no_show_rebook"]

    await eventually(no_show, timeout=25)
    result = await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    assert result.stage == "no_show"
    r = await api.as_(Role.front_desk).get("/v1/appointments", params={"clinic_id": clinic["id"], "stage": "no_show"})
    assert [a["id"] for a in r.json()] == [appt["id"]]


async def test_operator_confirm_stops_asks_and_calls(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, reask_interval=1.0, voice_call_after=1.0)
    appt = await book(api, clinic)
    await eventually(lambda: _asks_sent(api, appt["id"], 1))
    await reply(api, clinic, "what time is it again?")
    await eventually(lambda: _task_kinds(api, appt["id"], ["unread_message"]))
    r = await api.as_(Role.operator).post(f"/v1/appointments/{appt['id']}/confirm")
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "confirmed"
    await eventually(lambda: _no_open_tasks(api, appt["id"]))
    # An ask already in flight when the operator confirmed may still complete: count from here.
    frozen = (await state(api, appt["id"]))["asks_sent"]
    await asyncio.sleep(3)  # longer than the remaining re-asks + call would take
    v = await state(api, appt["id"])
    assert v["asks_sent"] == frozen and v["voice_calls"] == 0
    assert "voice_call" not in [m.kind for m in await sent(deps, appt["id"])]
    r = await api.as_(Role.operator).post(f"/v1/appointments/{appt['id']}/confirm")
    assert r.status_code == 409 and r.json()["detail"]["stage"] == "confirmed"
    await _cancel(api, appt["id"])


async def test_reschedule_leaves_no_reminder_for_the_old_time(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, reask_interval=1.5)
    appt = await book(api, clinic)
    await eventually(lambda: _asks_sent(api, appt["id"], 1))
    from tests.support.appointments import at

    r = await api.as_(Role.front_desk).post(
        f"/v1/appointments/{appt['id']}/reschedule", json={"starts_at": at(120), "duration_minutes": 45}
    )
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["version"] == 2 and v["stage"] == "booked" and v["asks_sent"] == 0
    assert v["duration_minutes"] == 45
    assert "rescheduled_v2" in events(v) and "ask_sent" in events(v)  # history kept

    async def reasked_for_new_time() -> None:
        assert (await state(api, appt["id"]))["asks_sent"] >= 2

    await eventually(reasked_for_new_time)
    msgs = await sent(deps, appt["id"])
    keys = [m.idempotency_key for m in msgs]
    v1 = [k for k in keys if ":v1:" in k]
    assert v1 == [f"{appt['workflow_id']}:v1:notice", f"{appt['workflow_id']}:v1:ask"], keys
    assert f"{appt['workflow_id']}:v2:notice" in keys
    assert "reschedule_notice" in [m.kind for m in msgs]
    await _cancel(api, appt["id"])


async def test_cancel_ends_the_journey(api: Api, client: Client) -> None:
    clinic = await make_clinic(api)
    appt = await book(api, clinic)
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{appt['id']}/cancel", json={"reason": "patient called"})
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "cancelled" and r.json()["fhir_status"] == "cancelled"
    out = await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    assert out.stage == "cancelled" and out.reason == "patient called"
    await eventually(lambda: _stage(api, appt["id"], "cancelled", live=False))
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{appt['id']}/check-in")
    assert r.status_code == 409 and r.json()["detail"]["stage"] == "cancelled"


async def _visit(api: Api, deps: Deps, clinic: dict, service: str) -> dict:
    appt = await book(api, clinic, service=service)

    async def noticed() -> None:
        assert "booking_notice" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(noticed)
    for action, role in (("confirm", Role.operator), ("check-in", Role.front_desk), ("finish", Role.doctor)):
        r = await api.as_(role).post(f"/v1/appointments/{appt['id']}/{action}")
        assert r.status_code == 200, (action, r.text)
    assert r.json()["stage"] == "finished" and r.json()["fhir_status"] == "fulfilled"
    return appt


async def test_nps_10_gets_the_review_link(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api)
    appt = await _visit(api, deps, clinic, "Implant placement")

    async def surveyed() -> None:
        assert "survey" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(surveyed)
    await reply(api, clinic, "10")
    out = await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    assert out.stage == "finished" and out.nps == 10
    msgs = await sent(deps, appt["id"])
    kinds = [m.kind for m in msgs]
    assert "care_memo" in kinds  # after implantation
    # The booking notice carried the before-procedure memo.
    assert msgs[0].kind == "booking_notice" and "Перед имплантацией" in msgs[0].body  # ru by default
    review = [m for m in msgs if m.kind == "review_link"]
    assert len(review) == 1 and "https://reviews.example/smile" in review[0].body
    assert await tasks(api, appt["id"]) == []
    await eventually(lambda: _nps(api, appt["id"], 10))


async def test_nps_3_goes_to_the_director(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api)
    appt = await _visit(api, deps, clinic, "Hygiene")

    async def surveyed() -> None:
        assert "survey" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(surveyed)
    await reply(api, clinic, button_id=f"nps:{appt['id']}:3")
    out = await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    assert out.nps == 3
    open_ = await tasks(api, appt["id"])
    assert [(t["kind"], t["assigned_role"]) for t in open_] == [("detractor_feedback", "director")]
    kinds = [m.kind for m in await sent(deps, appt["id"])]
    assert "feedback_form" in kinds and "review_link" not in kinds


# ---------------------------------------------------------------- helpers
async def _stage(api: Api, aid: str, stage: str, live: bool | None = None) -> None:
    v = await state(api, aid)
    assert v["stage"] == stage, v["stage"]
    if live is not None:
        assert v["live"] is live


async def _asks_sent(api: Api, aid: str, n: int) -> None:
    assert (await state(api, aid))["asks_sent"] == n


async def _task_kinds(api: Api, aid: str, kinds: list[str]) -> None:
    assert sorted(t["kind"] for t in await tasks(api, aid)) == kinds


async def _no_open_tasks(api: Api, aid: str) -> None:
    assert await tasks(api, aid) == []


async def _nps(api: Api, aid: str, n: int) -> None:
    v = await state(api, aid)
    assert v["nps"] == n and not v["live"]


async def _cancel(api: Api, aid: str) -> None:
    """Tests end their journeys so the session worker stays quiet."""
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{aid}/cancel", json={"reason": "test over"})
    assert r.status_code in (200, 409), r.text


async def test_long_history_continues_as_new_with_its_state(api: Api, client: Client) -> None:
    clinic = await make_clinic(api, reask_interval=30, max_history_events=100)
    appt = await book(api, clinic, in_seconds=120)
    await eventually(lambda: _asks_sent(api, appt["id"], 1))
    handle = client.get_workflow_handle(appt["workflow_id"])
    first_run = (await handle.describe()).run_id
    for i in range(12):  # each message: a signal, an operator task and a DB sync
        await signal_reply(client, appt["id"], kind="text", text=f"question {i}")

    async def continued() -> None:
        d = await client.get_workflow_handle(appt["workflow_id"]).describe()
        assert d.run_id != first_run
        v = await state(api, appt["id"])
        assert v["asks_sent"] == 1 and v["stage"] == "booked"
        assert events(v).count("patient_message") == 12
        assert len(await tasks(api, appt["id"])) == 12

    await eventually(continued)
    r = await api.as_(Role.operator).post(f"/v1/appointments/{appt['id']}/confirm")
    assert r.status_code == 200 and r.json()["asks_sent"] == 1
    await _cancel(api, appt["id"])


async def test_quiet_hours_defer_sends_but_not_same_day_critical_ones(api: Api, deps: Deps) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo("Europe/Kyiv"))
    window = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
    }
    clinic = await make_clinic(api, quiet_hours=window, reminder_lead=6 * 3600)
    later = await book(api, clinic, in_seconds=3 * 3600)  # ask + notice wait for the morning
    soon_clinic = await make_clinic(api, quiet_hours=window)
    soon = await book(api, soon_clinic, in_seconds=40)  # deferring would be too late

    async def soon_noticed() -> None:
        assert [m.kind for m in await sent(deps, soon["id"])][:2] == ["booking_notice", "reminder"]

    await eventually(soon_noticed)
    await asyncio.sleep(1)
    assert await sent(deps, later["id"]) == []
    assert events(await state(api, later["id"])) == ["booked"]
    await _cancel(api, later["id"])
    await _cancel(api, soon["id"])


async def test_required_check_in_missing_is_a_no_show(api: Api, client: Client) -> None:
    clinic = await make_clinic(api, require_check_in=True, confirm_deadline=3, no_show_grace=1)
    appt = await book(api, clinic, in_seconds=8)
    await eventually(lambda: _asks_sent(api, appt["id"], 1))
    await reply(api, clinic, "ok")
    await eventually(lambda: _stage(api, appt["id"], "confirmed"))

    async def no_show() -> None:
        assert [t["kind"] for t in await tasks(api, appt["id"])] == ["no_show_rebook"]

    await eventually(no_show, timeout=20)
    await eventually(lambda: _stage(api, appt["id"], "no_show", live=False))


async def test_search_attributes_follow_the_stage(api: Api, client: Client) -> None:
    clinic = await make_clinic(api, reask_interval=30)
    appt = await book(api, clinic)
    r = await api.as_(Role.operator).post(f"/v1/appointments/{appt['id']}/confirm")
    assert r.status_code == 200

    async def visible() -> None:
        q = f"ClinicId = '{clinic['id']}' AND AppointmentStage = 'confirmed'"
        ids = [w.id async for w in client.list_workflows(q)]
        assert ids == [appt["workflow_id"]]

    await eventually(visible)
    d = await client.get_workflow_handle(appt["workflow_id"]).describe()
    sa = {k.name: v for k, v in d.typed_search_attributes}  # type: ignore[attr-defined]
    assert set(sa) >= {"ClinicId", "AppointmentStage", "AppointmentStart"}
    assert clinic["patient_id"] not in str(sa)
    await _cancel(api, appt["id"])


async def test_booked_inside_the_deadline_window_is_not_asked(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, confirm_deadline=60)
    appt = await book(api, clinic, in_seconds=30)  # e.g. booked by phone for right now

    async def noticed() -> None:
        assert [m.kind for m in await sent(deps, appt["id"])] == ["booking_notice"]

    await eventually(noticed)
    await asyncio.sleep(1.5)
    v = await state(api, appt["id"])
    assert v["stage"] == "booked" and v["asks_sent"] == 0
    assert await tasks(api, appt["id"]) == []
    await _cancel(api, appt["id"])


async def test_journey_db_steps_are_local_activities(api: Api, client: Client, deps: Deps) -> None:
    """Issue 14: loading the journey's context and mirroring its state into the row run as
    local activities (no task-queue round trip, no full snapshot stored as an activity input);
    the row still follows the journey. The notice goes through the task queue here: the FAST
    policy's first ask falls due within LOCAL_SEND_WINDOW of it, and a send never holds a timer
    (tests/test_sends_local_first.py has the notice sent inside the workflow task)."""
    clinic = await make_clinic(api)
    appt = await book(api, clinic)

    async def noticed() -> None:
        assert "booking_notice" in [m.kind for m in await sent(deps, appt["id"])]
        v = await state(api, appt["id"])
        assert "notice_sent" in events(v)

    await eventually(noticed)
    await _cancel(api, appt["id"])
    await client.get_workflow_handle(appt["workflow_id"]).result()
    await eventually(lambda: _stage(api, appt["id"], "cancelled", live=False))
    scheduled, markers = [], 0
    async for e in client.get_workflow_handle(appt["workflow_id"]).fetch_history_events():
        if e.HasField("activity_task_scheduled_event_attributes"):
            scheduled.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        if e.HasField("marker_recorded_event_attributes"):
            markers += e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    assert "sync_appointment" not in scheduled and "load_appointment_context" not in scheduled, scheduled
    assert "send_patient_message" in scheduled
    assert markers >= 3  # the context, the first sync, the sync after the notice (and more)
