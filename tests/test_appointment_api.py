"""Booking edges: idempotency, double booking, input errors, stage conflicts (live API)."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from models.appointment import Appointment
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import at, book, make_clinic


def _fields(r) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(e["loc"][-1]) for e in r.json()["detail"]}


async def test_same_idempotency_key_books_once(api: Api, client: Client, deps) -> None:  # type: ignore[no-untyped-def]
    clinic = await make_clinic(api)
    key = f"desk-{uuid.uuid4().hex}"
    body = {
        "patient_id": clinic["patient_id"],
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "starts_at": at(3600),
        "duration_minutes": 30,
        "service": "Consultation",
    }
    desk = api.as_(Role.front_desk)
    first = await desk.post("/v1/appointments", json=body, headers={"Idempotency-Key": key})
    again = await desk.post("/v1/appointments", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 201, again.text
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["stage"] == "booked"
    from sqlmodel import select

    async with deps.sessions() as s:
        rows = (await s.exec(select(Appointment).where(Appointment.idempotency_key == key))).all()
    assert len(rows) == 1
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{first.json()['workflow_id']}'")]
    assert len(runs) == 1
    # The same key for a different booking is refused, not silently answered.
    other = await desk.post("/v1/appointments", json={**body, "starts_at": at(7200)}, headers={"Idempotency-Key": key})
    assert other.status_code == 409
    await desk.post(f"/v1/appointments/{first.json()['id']}/cancel", json={"reason": "test"})


async def test_doctor_double_booking_is_409(api: Api) -> None:
    clinic = await make_clinic(api)
    a = await book(api, clinic, in_seconds=3600, minutes=60)
    desk = api.as_(Role.front_desk)
    r = await desk.post(
        "/v1/appointments",
        json={
            "patient_id": clinic["patient_id"],
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": at(3600 + 30 * 60),
            "duration_minutes": 30,
            "service": "Consultation",
        },
    )
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["conflicting_appointment_id"] == a["id"]
    # Back to back is fine; moving the second one onto the first is not.
    b = await book(api, clinic, in_seconds=3600 + 60 * 60 + 1, minutes=30)
    r = await desk.post(f"/v1/appointments/{b['id']}/reschedule", json={"starts_at": at(3600 + 10 * 60)})
    assert r.status_code == 409, r.text
    # A cancelled visit frees its slot.
    r = await desk.post(f"/v1/appointments/{a['id']}/cancel", json={"reason": "freed"})
    assert r.status_code == 200

    async def slot_free() -> None:
        r = await desk.post(f"/v1/appointments/{b['id']}/reschedule", json={"starts_at": at(3600 + 10 * 60)})
        assert r.status_code == 200, r.text

    from tests.support.live import eventually

    await eventually(slot_free)
    await desk.post(f"/v1/appointments/{b['id']}/cancel", json={"reason": "test"})


async def test_bad_input_is_422_naming_the_field(api: Api) -> None:
    clinic = await make_clinic(api)
    desk = api.as_(Role.front_desk)
    base = {
        "patient_id": clinic["patient_id"],
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "starts_at": at(3600),
        "duration_minutes": 30,
        "service": "Consultation",
    }
    r = await desk.post("/v1/appointments", json={**base, "starts_at": at(-60)})
    assert r.status_code == 422 and _fields(r) == {"starts_at"}, r.text
    r = await desk.post("/v1/appointments", json={**base, "starts_at": "2030-01-01T10:00:00"})
    assert r.status_code == 422 and "starts_at" in _fields(r)
    for name in ("patient_id", "doctor_id", "clinic_id"):
        r = await desk.post("/v1/appointments", json={**base, name: "nope"})
        assert r.status_code == 422 and _fields(r) == {name}, r.text
    r = await desk.post("/v1/appointments", json={**base, "duration_minutes": 0})
    assert r.status_code == 422 and _fields(r) == {"duration_minutes"}
    # Wrong role.
    r = await api.as_(Role.accountant).post("/v1/appointments", json=base)
    assert r.status_code == 403


async def test_requests_not_fitting_the_stage_are_409(api: Api) -> None:
    clinic = await make_clinic(api)
    a = await book(api, clinic, in_seconds=3600)
    desk = api.as_(Role.front_desk)
    r = await api.as_(Role.doctor).post(f"/v1/appointments/{a['id']}/finish")
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["stage"] == "booked" and "booked" in r.json()["detail"]["message"]
    r = await desk.post(f"/v1/appointments/{a['id']}/reschedule", json={"starts_at": at(-10)})
    assert r.status_code == 422 and "starts_at" in r.text
    r = await desk.post(f"/v1/appointments/{a['id']}/check-in")
    assert r.status_code == 200 and r.json()["stage"] == "checked_in"
    assert r.json()["fhir_status"] == "checked-in"
    r = await desk.post(f"/v1/appointments/{a['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 409 and r.json()["detail"]["stage"] == "checked_in"
    r = await api.as_(Role.doctor).post(f"/v1/appointments/{a['id']}/finish")
    assert r.status_code == 200 and r.json()["stage"] == "finished"
    assert (await desk.get("/v1/appointments/nope")).status_code == 404
    r = await desk.get("/v1/appointments", params={"clinic_id": clinic["id"], "date": a["starts_at"][:10]})
    assert r.status_code == 200
    r = await desk.get("/v1/appointments", params={"stage": "bogus"})
    assert r.status_code == 422


async def test_demo_command_books_journeys(api: Api, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from typer.testing import CliRunner

    import cli

    pw = "demo-admin-pw-123"
    try:
        await cli._create_user(settings.database_url, "admin", pw, Role.admin, None, None, False)
    except BaseException:  # noqa: BLE001 - typer.Exit: the admin already exists
        await cli._create_user(settings.database_url, "admin", pw, Role.admin, None, None, True)
    (settings.data_dir / "admin-password").write_text(pw)
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["demo", "--api-url", str(api.http.base_url)])
    assert result.exit_code == 0, result.output
    booked = [ln for ln in result.output.splitlines() if ln.startswith("booked ")]
    assert len(booked) == 3, result.output
    clinic_id = next(ln for ln in result.output.splitlines() if ln.startswith("clinic "))
    clinic_id = clinic_id.split()[1].rstrip(".")
    r = await api.as_(Role.front_desk).get("/v1/appointments", params={"clinic_id": clinic_id})
    assert len(r.json()) == 3
    for a in r.json():
        await api.as_(Role.front_desk).post(f"/v1/appointments/{a['id']}/cancel", json={"reason": "demo over"})


async def test_failed_start_leaves_no_row_and_a_retry_books(api: Api, deps, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select
    from temporalio.service import RPCError, RPCStatusCode

    from core import booking

    clinic = await make_clinic(api)
    key = f"desk-{uuid.uuid4().hex}"
    body = {
        "patient_id": clinic["patient_id"],
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "starts_at": at(3600),
        "duration_minutes": 30,
        "service": "Consultation",
    }
    real_start = booking.start_journey

    async def down(*_a, **_k) -> None:  # type: ignore[no-untyped-def]
        raise RPCError("temporal is down", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(booking, "start_journey", down)
    desk = api.as_(Role.front_desk)
    r = await desk.post("/v1/appointments", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 503, r.text
    async with deps.sessions() as s:
        q = select(Appointment).where(Appointment.clinic_id == clinic["id"])
        assert (await s.exec(q)).all() == []
    monkeypatch.setattr(booking, "start_journey", real_start)
    r = await desk.post("/v1/appointments", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    await desk.post(f"/v1/appointments/{r.json()['id']}/cancel", json={"reason": "test"})


async def test_get_falls_back_to_the_row_when_no_worker_answers(api: Api, client: Client, deps) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from contracts.appointment import APPOINTMENT_WORKFLOW, AppointmentInput, appointment_workflow_id

    clinic = await make_clinic(api)
    start = datetime.now(UTC) + timedelta(hours=1)
    row = Appointment(
        clinic_id=clinic["id"],
        doctor_id=clinic["doctor_id"],
        patient_id=clinic["patient_id"],
        service="X",
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        duration_minutes=30,
        workflow_id="",
    )
    row.workflow_id = appointment_workflow_id(row.id)
    async with deps.sessions() as s:
        s.add(row)
        await s.commit()
    handle = await client.start_workflow(
        APPOINTMENT_WORKFLOW,
        AppointmentInput(
            appointment_id=row.id,
            clinic_id=clinic["id"],
            patient_id=clinic["patient_id"],
            doctor_id=clinic["doctor_id"],
            starts_at=start,
            duration_minutes=30,
            service="X",
            timezone="Europe/Kyiv",
        ),
        id=row.workflow_id,
        task_queue=f"nobody-{uuid.uuid4().hex}",
    )
    r = await api.as_(Role.front_desk).get(f"/v1/appointments/{row.id}")
    assert r.status_code == 200, r.text
    assert r.json()["live"] is False and r.json()["stage"] == "booked"
    await handle.terminate("test over")


async def test_a_rescheduled_visit_holds_its_new_slot_at_once(api: Api) -> None:
    """The row takes the new slot in the same transaction as the check, so a booking right
    after a reschedule cannot take that slot while the journey's own sync is still to come."""
    clinic = await make_clinic(api)
    a = await book(api, clinic, in_seconds=7200, minutes=30)
    desk = api.as_(Role.front_desk)
    r = await desk.post(f"/v1/appointments/{a['id']}/reschedule", json={"starts_at": at(3 * 3600)})
    assert r.status_code == 200, r.text
    r = await desk.post(
        "/v1/appointments",
        json={
            "patient_id": clinic["patient_id"],
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": at(3 * 3600 + 60),
            "duration_minutes": 30,
            "service": "Consultation",
        },
    )
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["conflicting_appointment_id"] == a["id"]
    # ...and the old slot is free at once.
    assert (await book(api, clinic, in_seconds=7200 + 60, minutes=30))["id"]
