"""Treatment-plan journeys against the real dev server, the real appointment journey as the
child, and the live API. Clinics use a compressed policy (seconds instead of hours/days)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from contracts.policy import JourneyPolicy
from contracts.treatment_directions import DIRECTIONS
from contracts.treatment_plan import (
    STATE_QUERY,
    TREATMENT_PLAN_WORKFLOW,
    PlanInput,
    PlanSnapshot,
    PlanState,
    Pricing,
    plan_workflow_id,
)
from core.codec import ENCODING, EncryptionCodec
from core.search_attributes import CLINIC_ID, TREATMENT_DIRECTION, TREATMENT_STAGE
from core.settings import Settings
from core.temporal import workflow_runner
from models.core import Role
from models.treatment import PlanItemIn, PricingError, price_plan
from tests.support.api import Api
from tests.support.live import eventually

HISTORIES = Path(__file__).parent / "histories"
FAST = {  # SPEC §3/§4 timings squeezed into seconds
    "quiet_hours": None,
    "reminder_lead": 2,
    "reask_interval": 1,
    "reask_count": 0,
    "voice_call_after": 1,
    "voice_call_attempts": 0,
    "confirm_deadline": 1,
    "no_show_grace": 1,
    "feedback_delay": 1,
    "survey_timeout": 2,
    "lab_results_after": 2,
}


async def _clinic(api: Api, **policy: object) -> dict:
    r = await api.as_(Role.admin).post(
        "/v1/clinics",
        json={
            "name": f"Plan clinic {uuid.uuid4().hex[:4]}",
            "address": "5 Sahaidachnoho St, Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "policy": {**FAST, **policy},
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _people(api: Api, clinic: dict) -> tuple[str, str]:
    r = await api.as_(Role.admin).post(
        "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": "Dr Implant", "specialty": "implantology"}
    )
    assert r.status_code == 201, r.text
    doctor = r.json()["id"]
    r = await api.as_(Role.front_desk).post(
        "/v1/patients",
        json={
            "full_name": "Plan Patient",
            "phone": "+380671112233",
            "preferred_channel": "sms",
            "clinic_id": clinic["id"],
        },
    )
    assert r.status_code == 201, r.text
    return doctor, r.json()["id"]


async def _plan(api: Api, clinic: dict, patient: str, direction: str = "implantology") -> dict:
    r = await api.as_(Role.doctor).post(
        "/v1/treatment-plans",
        json={
            "patient_id": patient,
            "clinic_id": clinic["id"],
            "direction": direction,
            "items": [{"service": "Implant", "tooth": 36, "unit_price": "25000.00"}],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _aware(s: str) -> datetime:
    d = datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _today() -> date:
    return datetime.now(ZoneInfo("Europe/Kyiv")).date()  # the test clinics' date


def _visit(doctor: str, in_seconds: float, minutes: int = 30) -> dict:
    start = datetime.now(UTC) + timedelta(seconds=in_seconds)
    return {"doctor_id": doctor, "starts_at": start.isoformat(), "duration_minutes": minutes}


async def _advance(api: Api, plan_id: str, to: str, role: Role = Role.doctor, **body: object):  # type: ignore[no-untyped-def]
    return await api.as_(role).post(f"/v1/treatment-plans/{plan_id}/advance", json={"to_stage": to, **body})


async def _finish_visit(api: Api, appointment_id: str) -> None:
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{appointment_id}/confirm")
    assert r.status_code == 200, r.text
    r = await api.as_(Role.doctor).post(f"/v1/appointments/{appointment_id}/finish")
    assert r.status_code == 200, r.text


# ----------------------------------------------------------------------------- pricing
def test_pricing_to_the_kopeck() -> None:
    items = [
        PlanItemIn(service="Implant", tooth=36, unit_price=Decimal("25000.00"), quantity=2),
        PlanItemIn(service="Abutment", tooth=46, unit_price=Decimal("7333.33"), quantity=3),
        PlanItemIn(service="X-ray", unit_price=Decimal("0.05"), quantity=1),
    ]
    p = price_plan(items, Decimal("7.5"), 2250)
    assert p.subtotal == Decimal("72000.04")  # 50000.00 + 21999.99 + 0.05
    assert p.discount_amount == Decimal("5400.00")  # 5400.003 -> 5400.00
    assert p.total == Decimal("64350.04")  # 66600.04 - 2250
    # ROUND_HALF_UP, not banker's rounding: 0.125 -> 0.13
    one = price_plan([PlanItemIn(service="s", unit_price=Decimal("2.50"))], Decimal("5"))
    assert one.discount_amount == Decimal("0.13") and one.total == Decimal("2.37")
    with pytest.raises(PricingError):
        price_plan([PlanItemIn(service="s", unit_price=Decimal("100"))], Decimal("10"), 91)
    assert price_plan([PlanItemIn(service="s", unit_price=Decimal("100"))], Decimal("10"), 90).total == Decimal("0.00")


async def test_plan_api_prices_and_validates(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    _, patient = await _people(api, clinic)
    body = {
        "patient_id": patient,
        "clinic_id": clinic["id"],
        "direction": "implantology",
        "discount_percent": "7.5",
        "bonus_points": 2250,
        "items": [
            {"service": "Implant", "tooth": 36, "unit_price": "25000.00", "quantity": 2},
            {"service": "Abutment", "tooth": 46, "unit_price": "7333.33", "quantity": 3},
            {"service": "X-ray", "unit_price": "0.05"},
        ],
    }
    r = await api.as_(Role.front_desk).post(f"/v1/patients/{patient}/points", json={"delta": 5000, "reason": "promo"})
    assert r.status_code == 201, r.text
    r = await api.as_(Role.front_desk).post("/v1/treatment-plans", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["subtotal"], out["discount_amount"], out["total"]) == ("72000.04", "5400.00", "64350.04")
    assert out["stage"] == "consultation" and out["items"][1]["line_total"] == "21999.99"
    for bad, field in [
        ({"bonus_points": 70000}, "bonus_points"),
        ({"items": [{"service": "x", "tooth": 19, "unit_price": "1"}]}, "tooth"),
        ({"direction": "cosmetology"}, "direction"),
        ({"items": [{"service": "x", "unit_price": "1.005"}]}, "unit_price"),
    ]:
        r = await api.as_(Role.front_desk).post("/v1/treatment-plans", json={**body, **bad})
        assert r.status_code == 422, (bad, r.text)
        assert field in r.text
    r = await api.as_(Role.accountant).post("/v1/treatment-plans", json=body)
    assert r.status_code == 403


# ----------------------------------------------------------------------------- transitions
async def test_invalid_transition_is_409_naming_allowed(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    doctor, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient)
    r = await _advance(api, plan["id"], "prosthetics_booked", callback_on=str(_today()))
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert detail["allowed"] == ["lab_tests", "implant_placement_booked", "completed"]
    assert "implant_placement_booked" in detail["message"]
    r = await _advance(api, plan["id"], "implant_placement_booked")  # neither visit nor date
    assert r.status_code == 422 and "callback_on" in r.text
    r = await _advance(api, plan["id"], "lab_tests", appointment=_visit(doctor, 60))
    assert r.status_code == 422 and "not a visit" in r.text, r.text
    r = await _advance(api, plan["id"], "no_such_stage")
    assert r.status_code == 409 and "allowed" in r.json()["detail"]
    view = (await api.as_(Role.operator).get(f"/v1/treatment-plans/{plan['id']}")).json()
    assert view["stage"] == "consultation" and len(view["history"]) == 1  # nothing written


async def test_lab_tests_stage_asks_the_patient(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    _, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient, "therapy")
    r = await _advance(api, plan["id"], "lab_tests")
    assert r.status_code == 200, r.text
    assert r.json()["waiting_for"] == "lab_results"

    async def asked() -> None:
        v = (await api.as_(Role.operator).get(f"/v1/treatment-plans/{plan['id']}")).json()
        assert [h for h in v["history"] if h["action"] == "lab_results_asked"], v["history"]

    await eventually(asked, timeout=30)


async def test_callback_task_fires_on_its_date(api: Api, worker: None) -> None:
    """callback_hour is the next whole minute in the clinic's timezone (at least 6 s away):
    the journey sleeps on a durable timer and raises the task then, not before."""
    tz = ZoneInfo("Europe/Kyiv")
    now = datetime.now(tz)
    at = (now + timedelta(seconds=6)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    clinic = await _clinic(api, callback_hour=at.strftime("%H:%M"))
    _, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient)
    r = await _advance(api, plan["id"], "implant_placement_booked", role=Role.front_desk, callback_on=str(at.date()))
    assert r.status_code == 200, r.text
    assert r.json()["waiting_for"] == "callback"
    assert datetime.fromisoformat(r.json()["next_due_at"]) == at.astimezone(UTC)
    tasks = "/v1/tasks?kind=plan_callback&subject_id=" + plan["id"]
    assert (await api.as_(Role.operator).get(tasks)).json() == []  # not before its time

    async def fired() -> dict:
        found = (await api.as_(Role.operator).get(tasks)).json()
        assert len(found) == 1, found
        return found[0]

    task = await eventually(fired, timeout=(at - now).total_seconds() + 20, interval=0.5)
    assert _aware(task["due_at"]) == at.astimezone(UTC)  # SQLite drops the offset
    assert datetime.now(UTC) >= at.astimezone(UTC)
    assert task["subject_type"] == "treatment_plan" and task["clinic_id"] == clinic["id"]
    # Booking the visit now closes the call-back task.
    rows = (await api.as_(Role.operator).get("/v1/treatment-plans?clinic_id=" + clinic["id"])).json()
    assert rows[0]["stage"] == "implant_placement_booked"


# ----------------------------------------------------------------------------- child journeys
async def test_whole_implantology_plan_with_two_child_appointments(
    api: Api, worker: None, client: Client, settings: Settings
) -> None:
    clinic = await _clinic(api)
    doctor, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient)
    pid = plan["id"]

    r = await _advance(api, pid, "implant_placement_booked", appointment=_visit(doctor, 30))
    assert r.status_code == 200, r.text
    first = r.json()["appointments"][0]
    assert first["stage"] == "booked" and r.json()["waiting_for"] == "visit"
    # While the child journey runs the plan cannot be moved by hand (not even re-booked).
    for to in ("implants_placed", "implant_placement_booked"):
        r = await _advance(api, pid, to, appointment=_visit(doctor, 300) if to.endswith("booked") else None)
        assert r.status_code == 409, r.text
        assert r.json()["detail"]["running_appointment_id"] == first["appointment_id"]
        assert "still running" in r.json()["detail"]["message"]
    await _finish_visit(api, first["appointment_id"])
    view = (await api.as_(Role.doctor).get(f"/v1/treatment-plans/{pid}")).json()
    assert view["appointments"][0]["journey_stage"] == "finished"

    r = await _advance(api, pid, "implants_placed")
    assert r.status_code == 200, r.text
    assert r.json()["waiting_for"] == "callback"  # default healing call-back (90 days)
    r = await _advance(api, pid, "suture_removal_booked", role=Role.front_desk, appointment=_visit(doctor, 30, 20))
    assert r.status_code == 200, r.text
    second = r.json()["appointments"][1]
    await _finish_visit(api, second["appointment_id"])
    for to, extra in [
        ("impressions_taken", {}),
        ("prosthetics_booked", {"callback_on": str(_today() + timedelta(7))}),
        ("completed", {}),
    ]:
        r = await _advance(api, pid, to, **extra)
        assert r.status_code == 200, (to, r.text)
    assert r.json()["status"] == "completed" and r.json()["stage"] == "completed"

    handle = client.get_workflow_handle(plan_workflow_id(pid), result_type=PlanSnapshot)
    final: PlanSnapshot = await asyncio.wait_for(handle.result(), 30)
    assert [a.plan_stage for a in final.appointments] == ["implant_placement_booked", "suture_removal_booked"]
    moves = [(h.from_stage, h.to_stage, h.by_role) for h in final.history if h.action == "advanced"]
    assert moves == [
        ("consultation", "implant_placement_booked", "doctor"),
        ("implant_placement_booked", "implants_placed", "doctor"),
        ("implants_placed", "suture_removal_booked", "front_desk"),
        ("suture_removal_booked", "impressions_taken", "doctor"),
        ("impressions_taken", "prosthetics_booked", "doctor"),
        ("prosthetics_booked", "completed", "doctor"),
    ]
    assert all(h.by_user for h in final.history if h.action == "advanced")
    desc = await handle.describe()
    sa = desc.typed_search_attributes
    assert sa.get(TREATMENT_STAGE) == "completed" and sa.get(CLINIC_ID) == clinic["id"]
    assert sa.get(TREATMENT_DIRECTION) == "implantology"

    async def listed() -> None:
        rows = (
            await api.as_(Role.director).get(f"/v1/treatment-plans?clinic_id={clinic['id']}&stage=completed")
        ).json()
        assert [r["id"] for r in rows] == [pid]

    await eventually(listed)
    await _save_history(client, settings, handle.id, "treatment_plan_implantology.json")


async def test_child_no_show_reaches_the_plan(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    doctor, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient)
    pid = plan["id"]
    r = await _advance(api, pid, "implant_placement_booked", appointment=_visit(doctor, 4))
    assert r.status_code == 200, r.text
    appt = r.json()["appointments"][0]["appointment_id"]

    async def rebook_task() -> dict:
        found = (await api.as_(Role.operator).get(f"/v1/tasks?kind=plan_rebook&subject_id={pid}")).json()
        assert len(found) == 1, found
        return found[0]

    task = await eventually(rebook_task, timeout=40, interval=0.5)
    assert task["details"]["stage"] == "implant_placement_booked"
    view = (await api.as_(Role.operator).get(f"/v1/treatment-plans/{pid}")).json()
    assert view["appointments"][0]["stage"] == "no_show"
    assert view["waiting_for"] == "rebooking"
    assert view["allowed_next"][0] == "implant_placement_booked"
    # Re-booking the stage starts a new child and closes the re-book task.
    r = await _advance(api, pid, "implant_placement_booked", role=Role.operator, appointment=_visit(doctor, 3600))
    assert r.status_code == 200, r.text
    assert r.json()["appointments"][1]["appointment_id"] != appt
    rebooked = r.json()["appointments"][1]
    r = await api.as_(Role.operator).get(f"/v1/tasks/{task['id']}")
    assert r.json()["state"] == "cancelled"
    r2 = await api.as_(Role.doctor).post(
        f"/v1/treatment-plans/{pid}/cancel", json={"reason": "moves to a new plan", "cancel_visits": False}
    )
    assert r2.status_code == 200 and r2.json()["stage"] == "cancelled"
    # Asked to keep its visits, the cancelled plan's visit stays booked: a clashing slot for
    # the same doctor is refused by the booking activity (409).
    other = await _plan(api, clinic, patient)
    r = await _advance(
        api,
        other["id"],
        "implant_placement_booked",
        appointment={**_visit(doctor, 0), "starts_at": rebooked["starts_at"]},
    )
    assert r.status_code == 409 and "already has a visit" in r.text, r.text


async def test_list_filters_by_due_date_and_pages(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    _, patient = await _people(api, clinic)
    soon, later = await _plan(api, clinic, patient), await _plan(api, clinic, patient)
    for plan, days in ((soon, 10), (later, 40)):
        on = _today() + timedelta(days=days)
        r = await _advance(api, plan["id"], "implant_placement_booked", callback_on=str(on))
        assert r.status_code == 200, r.text
    ops = api.as_(Role.operator)

    async def listed(**params: object) -> list[str]:
        r = await ops.get("/v1/treatment-plans", params={"clinic_id": clinic["id"], **params})
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()]

    async def both_due() -> None:  # the rows catch up with the journeys' syncs
        assert await listed(due_before=str(_today() + timedelta(days=60))) == [soon["id"], later["id"]]

    await eventually(both_due, timeout=30)
    assert await listed(due_before=str(_today() + timedelta(days=20))) == [soon["id"]]
    assert await listed(due_before=str(_today())) == []
    # Soonest due first; paging is applied after the filter.
    assert await listed(limit=1) == [soon["id"]]
    assert await listed(limit=1, offset=1) == [later["id"]]


async def test_same_idempotency_key_creates_one_plan(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    _, patient = await _people(api, clinic)
    body = {
        "patient_id": patient,
        "clinic_id": clinic["id"],
        "direction": "therapy",
        "items": [{"service": "Filling", "tooth": 26, "unit_price": "1500.00", "quantity": 1}],
    }
    key = {"Idempotency-Key": f"desk-{uuid.uuid4().hex[:6]}"}
    desk = api.as_(Role.front_desk)
    first = await desk.post("/v1/treatment-plans", json=body, headers=key)
    again = await desk.post("/v1/treatment-plans", json=body, headers=key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert first.json()["id"] == again.json()["id"]
    listed = (await api.as_(Role.operator).get("/v1/treatment-plans", params={"clinic_id": clinic["id"]})).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert [p["id"] for p in items] == [first.json()["id"]]
    other = await desk.post("/v1/treatment-plans", json={**body, "direction": "orthodontics"}, headers=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.text
    # Without a key, a second plan is a second plan.
    assert (await desk.post("/v1/treatment-plans", json=body)).json()["id"] != first.json()["id"]


async def test_cancelling_a_plan_cancels_its_booked_visit(api: Api, worker: None) -> None:
    clinic = await _clinic(api)
    doctor, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient)
    r = await _advance(api, plan["id"], "implant_placement_booked", appointment=_visit(doctor, 3600))
    assert r.status_code == 200, r.text
    appt = r.json()["appointments"][0]["appointment_id"]
    r = await api.as_(Role.doctor).post(
        f"/v1/treatment-plans/{plan['id']}/cancel", json={"reason": "patient declined the treatment"}
    )
    assert r.status_code == 200 and r.json()["stage"] == "cancelled"

    async def visit_cancelled() -> None:
        view = (await api.as_(Role.front_desk).get(f"/v1/appointments/{appt}")).json()
        assert view["stage"] == "cancelled", view

    await eventually(visit_cancelled, timeout=30)
    # The slot is free again for another plan (once the visit's row has caught up).
    other = await _plan(api, clinic, patient)

    async def slot_free() -> None:
        r = await _advance(api, other["id"], "implant_placement_booked", appointment=_visit(doctor, 3600))
        assert r.status_code == 200, r.text

    await eventually(slot_free, timeout=30)


# ----------------------------------------------------------------------------- continue-as-new
async def test_plan_continues_as_new_and_keeps_its_state(api: Api, worker: None, client: Client) -> None:
    clinic = await _clinic(api, max_history_events=100)
    _, patient = await _people(api, clinic)
    plan = await _plan(api, clinic, patient, "orthodontics")
    pid = plan["id"]
    later = str(_today() + timedelta(days=3))
    r = await _advance(api, pid, "braces_fitting_booked", callback_on=later)
    assert r.status_code == 200, r.text
    moves = 1
    for _ in range(6):
        for to in ("braces_worn", "adjustment_booked"):
            r = await _advance(api, pid, to, callback_on=later)
            assert r.status_code == 200, r.text
            moves += 1
    handle = client.get_workflow_handle(plan_workflow_id(pid))

    async def rolled_over() -> PlanSnapshot:
        v = await handle.query(STATE_QUERY, result_type=PlanSnapshot)
        assert v.runs >= 2
        return v

    view = await eventually(rolled_over, timeout=20)
    assert len([h for h in view.history if h.action == "advanced"]) == moves
    assert view.stage == "adjustment_booked" and view.pricing.total == "25000.00"
    assert view.next_due_at is not None  # the pending call-back timer was carried over
    desc = await handle.describe()
    assert (
        desc.run_id != (await handle.describe()).raw_description.workflow_execution_info.first_run_id or view.runs >= 2
    )
    assert desc.typed_search_attributes.get(TREATMENT_STAGE) == "adjustment_booked"
    r = await _advance(api, pid, "braces_worn", callback_on=later)  # still moves after CAN
    assert r.status_code == 200, r.text


async def test_no_continue_as_new_while_a_child_runs(
    api: Api, worker: None, client: Client, settings: Settings
) -> None:
    """History is over the limit while the child visit runs: the plan waits for the child's
    outcome (no result lost), then continues as new carrying it."""
    clinic = await _clinic(api)
    doctor, patient = await _people(api, clinic)
    pid = uuid.uuid4().hex
    d = DIRECTIONS["implantology"]
    policy = JourneyPolicy(
        max_history_events=20,
        quiet_hours=None,
        reminder_lead=2,
        reask_count=0,
        voice_call_attempts=0,
        confirm_deadline=1,
        no_show_grace=1,
    )
    state = PlanState(
        plan_id=pid,
        clinic_id=clinic["id"],
        patient_id=patient,
        direction=d.key,
        timezone="Europe/Kyiv",
        stage=d.first.key,
        items=[],
        pricing=Pricing("0.00", "0.00", "0.00", 0, "0.00"),
        policy=policy,
    )
    handle = await client.start_workflow(
        TREATMENT_PLAN_WORKFLOW,
        PlanInput(state=state),
        id=plan_workflow_id(pid),
        task_queue=settings.temporal_task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(CLINIC_ID, clinic["id"]),
                SearchAttributePair(TREATMENT_DIRECTION, d.key),
                SearchAttributePair(TREATMENT_STAGE, d.first.key),
            ]
        ),
    )

    async def mirrored() -> None:  # the journey's first sync writes the row
        r = await api.as_(Role.operator).get(f"/v1/treatment-plans/{pid}")
        assert r.status_code == 200, r.text

    await eventually(mirrored)
    r = await _advance(api, pid, "implant_placement_booked", appointment=_visit(doctor, 4))
    assert r.status_code == 200, r.text
    assert r.json()["runs"] == 1
    desc = await handle.describe()
    assert desc.raw_description.workflow_execution_info.history_length > 20

    async def after_outcome() -> PlanSnapshot:
        v = await handle.query(STATE_QUERY, result_type=PlanSnapshot)
        assert v.runs == 2 and v.appointments[0].stage == "no_show", v
        return v

    view = await eventually(after_outcome, timeout=40, interval=0.5)
    assert view.waiting_for == "rebooking" and not view.appointments[0].running
    await handle.execute_update("cancel", {"reason": "test over", "actor": {}})


# ----------------------------------------------------------------------------- replay
async def _save_history(client: Client, settings: Settings, wf_id: str, name: str) -> None:
    """Keep a decrypted history for the replay test (only when asked, or the first time)."""
    path = HISTORIES / name
    if path.exists() and not os.environ.get("SAVE_TREATMENT_HISTORIES"):
        return
    history = await client.get_workflow_handle(wf_id).fetch_history()
    codec = EncryptionCodec(settings.encryption_keys())
    data = _decrypt(json.loads(history.to_json()), codec)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def _decrypt(node: object, codec: EncryptionCodec) -> object:
    enc = base64.b64encode(ENCODING).decode()
    if isinstance(node, dict):
        if node.get("metadata", {}).get("encoding") == enc and "data" in node:
            p = json_format.ParseDict(node, Payload())
            return json_format.MessageToDict(codec.decode_one(p))
        return {k: _decrypt(v, codec) for k, v in node.items()}
    if isinstance(node, list):
        return [_decrypt(v, codec) for v in node]
    return node


async def test_replay_saved_histories() -> None:
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    from core.codec import data_converter
    from workflows.treatment_plan import TreatmentPlanJourney

    files = sorted(HISTORIES.glob("treatment_*.json"))
    assert files, "no saved treatment-plan histories"
    # Saved histories are decrypted; the codec passes plain payloads through.
    replayer = Replayer(
        workflows=[TreatmentPlanJourney],
        workflow_runner=workflow_runner(),
        data_converter=data_converter([("replay", os.urandom(32))]),
    )
    for f in files:
        await replayer.replay_workflow(WorkflowHistory.from_json(f.stem, f.read_text()))
