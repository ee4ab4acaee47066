"""Bonus points (issue 12, the ledger part): the ledger on SQLite and PostgreSQL, and through the
API with treatment plans on the real dev server: a plan spends points, cannot spend more than the
balance, and gives them back once when cancelled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlmodel import select

from core.db import make_engine, migrate, session_factory
from core.settings import PROJECT_ROOT
from models import points
from models.core import Patient, Role
from tests.support.api import Api
from tests.support.live import eventually


# ----------------------------------------------------------------------------- data layer
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'data.db'}"
    else:
        server = (
            os.environ.get("TEST_DATABASE_URL")
            or subprocess.run(
                [str(PROJECT_ROOT / "scripts" / "pg-test.sh"), "start"], check=True, capture_output=True, text=True
            ).stdout.strip()
        )
        name = f"jt_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = server.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    return url


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[object]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_ledger_keeps_the_balance_and_never_goes_negative(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        p = Patient(full_name="Ledger Patient")
        s.add(p)
        await s.commit()
        pid = p.id
        e = await points.apply(s, pid, 300, kind=points.MANUAL, reason="welcome")
        await s.commit()
        assert e.balance_after == 300
        with pytest.raises(points.NotEnoughPoints) as err:
            await points.apply(s, pid, -301, kind=points.MANUAL, reason="too much")
        await s.rollback()
        assert err.value.balance == 300
        assert await points.balance(s, pid) == 300
        assert [x.delta for x in await points.entries(s, pid, 10, 0)] == [300]

    # Concurrent spends of 100 from 300: exactly three win, the balance ends at 0.
    async def spend() -> bool:
        async with sessions() as s:
            try:
                await points.apply(s, pid, -100, kind=points.MANUAL, reason="spend")
                await s.commit()
                return True
            except points.NotEnoughPoints:
                await s.rollback()
                return False

    won = await asyncio.gather(*[spend() for _ in range(6)])
    assert sum(won) == 3
    async with sessions() as s:
        assert await points.balance(s, pid) == 0
        rows = await points.entries(s, pid, 50, 0)
        assert sum(r.delta for r in rows) == 0 and len(rows) == 4
        assert all(r.balance_after >= 0 for r in rows)


# ----------------------------------------------------------------------------- API
async def _clinic_patient(api: Api) -> tuple[str, str]:
    r = await api.as_(Role.admin).post(
        "/v1/clinics",
        json={
            "name": f"Points {uuid.uuid4().hex[:4]}",
            "address": "1 Khreshchatyk",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
        },
    )
    assert r.status_code == 201, r.text
    clinic = r.json()["id"]
    r = await api.as_(Role.admin).post(
        "/v1/patients", json={"full_name": "Points Patient", "phone": "+380671110000", "clinic_id": clinic}
    )
    assert r.status_code == 201, r.text
    return clinic, r.json()["id"]


async def test_points_api_ledger_idempotency_and_limits(api: Api) -> None:
    clinic, patient = await _clinic_patient(api)
    desk = api.as_(Role.director)
    admin = api.as_(Role.admin)
    key = {"Idempotency-Key": f"pts-{uuid.uuid4().hex[:6]}"}
    first = await desk.post(f"/v1/patients/{patient}/points", json={"delta": 2250, "reason": "visit"}, headers=key)
    again = await desk.post(f"/v1/patients/{patient}/points", json={"delta": 2250, "reason": "visit"}, headers=key)
    assert first.status_code == 201 and again.status_code == 201, (first.text, again.text)
    assert first.json()["id"] == again.json()["id"] and again.json()["balance"] == 2250
    other = await desk.post(f"/v1/patients/{patient}/points", json={"delta": 5, "reason": "visit"}, headers=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.text
    r = await desk.post(f"/v1/patients/{patient}/points", json={"delta": -2251, "reason": "gift"})
    assert r.status_code == 409 and "2250" in r.text
    for bad in ({"delta": 0, "reason": "x"}, {"delta": 5}, {"delta": 5, "reason": ""}):
        r = await desk.post(f"/v1/patients/{patient}/points", json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = await desk.post(f"/v1/patients/{patient}/points", json={"delta": -250, "reason": "gift"})
    assert r.status_code == 201 and r.json()["balance"] == 2000
    page = (await desk.get(f"/v1/patients/{patient}/points", params={"limit": 1})).json()
    assert page["balance"] == 2000 and [e["delta"] for e in page["entries"]] == [-250]
    page2 = (await desk.get(f"/v1/patients/{patient}/points", params={"limit": 1, "offset": 1})).json()
    assert [e["delta"] for e in page2["entries"]] == [2250]
    # Another clinic's front desk: 404, as for a missing patient.
    r = await api.as_(Role.admin).post(
        "/v1/clinics",
        json={
            "name": f"Other {uuid.uuid4().hex[:4]}",
            "address": "2 Podil",
            "phone": "+380441234568",
            "timezone": "Europe/Kyiv",
        },
    )
    name = f"desk-{uuid.uuid4().hex[:6]}"
    r = await admin.post(
        "/v1/staff",
        json={"username": name, "password": "front-desk-pass", "role": "front_desk", "clinic_id": r.json()["id"]},
    )
    assert r.status_code == 201, r.text
    r = await api.http.post("/v1/auth/token", data={"username": name, "password": "front-desk-pass"})
    stranger = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await api.http.get(f"/v1/patients/{patient}/points", headers=stranger)).status_code == 404
    r = await api.http.post(f"/v1/patients/{patient}/points", headers=stranger, json={"delta": 1, "reason": "x"})
    assert r.status_code == 404
    assert (await admin.get(f"/v1/patients/{patient}/points")).json()["balance"] == 2000


async def test_plan_spends_points_and_cancel_returns_them_once(api: Api, worker: None) -> None:
    clinic, patient = await _clinic_patient(api)
    admin = api.as_(Role.admin)
    assert (
        await admin.post(f"/v1/patients/{patient}/points", json={"delta": 3000, "reason": "loyalty"})
    ).status_code == 201
    body = {
        "patient_id": patient,
        "clinic_id": clinic,
        "direction": "therapy",
        "bonus_points": 3001,
        "items": [{"service": "Filling", "tooth": 26, "unit_price": "5000.00"}],
    }
    r = await admin.post("/v1/treatment-plans", json=body)
    assert r.status_code == 422 and "bonus_points" in r.text and "3000" in r.text
    assert (await admin.get(f"/v1/patients/{patient}/points")).json()["balance"] == 3000
    key = {"Idempotency-Key": f"plan-{uuid.uuid4().hex[:6]}"}
    r = await admin.post("/v1/treatment-plans", json={**body, "bonus_points": 2250}, headers=key)
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["bonus_points"] == 2250 and plan["total"] == "2750.00"
    r = await admin.post("/v1/treatment-plans", json={**body, "bonus_points": 2250}, headers=key)
    assert r.status_code == 201 and r.json()["id"] == plan["id"]
    ledger = (await admin.get(f"/v1/patients/{patient}/points")).json()
    assert ledger["balance"] == 750
    assert [(e["kind"], e["delta"], e["plan_id"]) for e in ledger["entries"]][0] == ("plan_spend", -2250, plan["id"])
    r = await admin.post(f"/v1/treatment-plans/{plan['id']}/cancel", json={"reason": "declined"})
    assert r.status_code == 200, r.text
    assert (await admin.get(f"/v1/patients/{patient}/points")).json()["balance"] == 3000

    async def synced() -> None:  # the journey's own sync of the cancelled plan refunds nothing twice
        rows = (await admin.get("/v1/treatment-plans", params={"patient_id": patient})).json()
        assert rows[0]["status"] == "cancelled", rows

    await eventually(synced, timeout=30)
    ledger = (await admin.get(f"/v1/patients/{patient}/points")).json()
    assert ledger["balance"] == 3000
    assert sorted(e["kind"] for e in ledger["entries"]) == ["manual", "plan_refund", "plan_spend"]
    assert [e for e in ledger["entries"] if e["kind"] == "plan_refund"][0]["plan_id"] == plan["id"]
    assert sum(e["delta"] for e in ledger["entries"]) == 3000


async def test_models_share_the_patient_balance(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        p = Patient(full_name="Balance Patient", loyalty_points=10)
        s.add(p)
        await s.commit()
        assert (await s.exec(select(Patient.loyalty_points).where(Patient.id == p.id))).one() == 10
        assert await points.refund_plan(s, "no-such-plan") is None
