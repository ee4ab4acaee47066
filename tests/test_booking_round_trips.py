"""Issue 14: what one booking costs the database (bench/booking_cost.py measures the CPU).

POST /v1/appointments with an Idempotency-Key was 17 statements and 2 commits (clinic, doctor
and patient read one by one, the catalogue, the key twice, the slot, the waiting list, two
campaign reads, the first-visit inputs in three and a second transaction for
`journey_started`); now it is at most 6 on SQLite and one commit, and `journey_started` is
written in batches (core.booking.StartedMarks). Counted on the app's engine, never timed.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from api.main import create_app
from core.booking import StartedMarks
from core.security import create_token, hash_password
from core.settings import Settings
from models.appointment import Appointment
from models.core import Channel, Clinic, Doctor, Patient, Role, StaffUser
from tests.support.live import eventually

COUNTING: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)


class Counted:
    """Statements and commits of the request only: the engine is shared with the app's own
    tasks (api.repair's rounds, the batch of marks), which run in contexts of their own."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def stmt(self, _conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if COUNTING.get():
            self.statements.append(statement)

    def commit(self, _conn: Any) -> None:
        if COUNTING.get():
            self.commits += 1


@pytest.fixture
async def desk(settings: Settings, worker: None) -> AsyncIterator[tuple[Any, httpx.AsyncClient, dict[str, str]]]:
    """An API app of our own (its engine is the one counted) on the session database and
    task queue, a clinic with one doctor and two patients, and a front desk of that clinic."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessions() as s:
            clinic = Clinic(name="Counted", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv")
            s.add(clinic)
            await s.flush()
            doctor = Doctor(clinic_id=clinic.id, full_name="Dr Counted", specialty="therapy")
            patients = [
                Patient(
                    full_name=f"Counted {i}",
                    phone=f"+38067555000{i}",
                    preferred_channel=Channel.sms,
                    clinic_id=clinic.id,
                )
                for i in range(2)
            ]
            user = StaffUser(
                username=f"desk-{uuid.uuid4().hex[:6]}",
                password_hash=hash_password("unused-password"),
                role=Role.front_desk,
                clinic_id=clinic.id,
            )
            s.add_all([doctor, *patients, user])
            await s.commit()
            ids = {"clinic": clinic.id, "doctor": doctor.id, "p0": patients[0].id, "p1": patients[1].id}
        token = create_token(settings.jwt_secret, user.id, Role.front_desk.value, 600)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {token}"}
        ) as http:
            yield app, http, ids


def _body(ids: dict[str, str], patient: str, starts_at: datetime) -> dict[str, Any]:
    return {
        "patient_id": ids[patient],
        "clinic_id": ids["clinic"],
        "doctor_id": ids["doctor"],
        "starts_at": starts_at.isoformat(),
        "duration_minutes": 30,
        "service": "Консультация терапевта",
    }


async def test_a_booking_is_few_statements_and_one_commit(desk: tuple[Any, httpx.AsyncClient, dict[str, str]]) -> None:
    app, http, ids = desk
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)
    r = await http.post("/v1/appointments", json=_body(ids, "p0", start))  # warm: first connections
    assert r.status_code == 201, r.text

    counted = Counted()
    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", counted.stmt)
    event.listen(engine, "commit", counted.commit)
    token = COUNTING.set(True)
    try:
        r = await http.post(
            "/v1/appointments",
            json=_body(ids, "p1", start + timedelta(hours=1)),
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
    finally:
        COUNTING.reset(token)
        event.remove(engine, "before_cursor_execute", counted.stmt)
        event.remove(engine, "commit", counted.commit)
    assert r.status_code == 201, r.text
    # The user row; the key's booking (a retry is answered before anything else) + clinic +
    # doctor + patient + catalogue; the doctor's lock; key + slot + waiting list + campaigns
    # under it; the patient with the first-visit inputs (SQLite: one statement); the insert.
    # It was 17 and 2 commits.
    assert len(counted.statements) <= 6, "\n".join(counted.statements)
    assert counted.commits == 1
    aid = r.json()["id"]

    async def marked() -> None:
        async with app.state.sessions() as s:
            row = await s.get(Appointment, aid)
            assert row is not None and row.journey_started

    await eventually(marked, timeout=30)


async def test_marks_pending_at_shutdown_are_written(settings: Settings, worker: None) -> None:
    """A graceful stop writes the marks still gathering (api.repair would start them again,
    harmlessly, but the ops log should not fill with 'repaired' lines after every deploy)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessions() as s:
            clinic = Clinic(name="Stopping", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv")
            s.add(clinic)
            await s.flush()
            doctor = Doctor(clinic_id=clinic.id, full_name="Dr Stop", specialty="therapy")
            patient = Patient(
                full_name="Stop", phone="+380675550100", preferred_channel=Channel.sms, clinic_id=clinic.id
            )
            user = StaffUser(
                username=f"desk-{uuid.uuid4().hex[:6]}",
                password_hash=hash_password("unused-password"),
                role=Role.operator,
            )
            s.add_all([doctor, patient, user])
            await s.commit()
        app.state.started_marks._every = 3600  # nothing is written by the loop in this test
        token = create_token(settings.jwt_secret, user.id, Role.operator.value, 600)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as http:
            r = await http.post(
                "/v1/appointments",
                json={
                    "patient_id": patient.id,
                    "clinic_id": clinic.id,
                    "doctor_id": doctor.id,
                    "starts_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
                    "duration_minutes": 30,
                    "service": "x",
                },
            )
        assert r.status_code == 201, r.text
        async with app.state.sessions() as s:
            row = await s.get(Appointment, r.json()["id"])
            assert row is not None and not row.journey_started  # still gathering
    async with app.state.sessions() as s:  # the engine was disposed; it reconnects
        row = await s.get(Appointment, r.json()["id"])
        assert row is not None and row.journey_started


async def test_a_failed_mark_write_is_kept_for_the_next_round(settings: Settings) -> None:
    from core.db import make_engine, session_factory

    engine = make_engine(settings.database_url)
    real = session_factory(engine)
    async with real() as s:
        clinic = Clinic(name="Flaky", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv")
        s.add(clinic)
        await s.flush()
        doctor = Doctor(clinic_id=clinic.id, full_name="Dr Flaky", specialty="therapy")
        patient = Patient(full_name="Flaky", phone="+380675550200", clinic_id=clinic.id)
        s.add_all([doctor, patient])
        await s.flush()
        appt = Appointment(
            clinic_id=clinic.id,
            doctor_id=doctor.id,
            patient_id=patient.id,
            service="x",
            starts_at=datetime.now(UTC) + timedelta(days=9),
            ends_at=datetime.now(UTC) + timedelta(days=9, minutes=30),
            duration_minutes=30,
            workflow_id="w",
            journey_started=False,
        )
        s.add(appt)
        await s.commit()
    calls = 0

    def flaky() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return real()

    marks = StartedMarks(flaky)  # type: ignore[arg-type]
    marks.add(appt.id)
    with pytest.raises(ConnectionError):
        await marks.flush()
    assert await marks.flush() == 1
    async with real() as s:
        row = await s.get(Appointment, appt.id)
        assert row is not None and row.journey_started
    assert await marks.flush() == 0
    await engine.dispose()
