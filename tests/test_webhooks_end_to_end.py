"""End to end with the appointment journey: book through the API, the patient answers, the
appointment becomes `confirmed` - once through the sandbox provider (the session API runs in
sandbox mode), once through the fake WhatsApp Cloud API and its signed webhook."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.deps import Deps
from core.settings import Settings
from models.core import Role
from tests.support.api import Api
from tests.support.fake_providers import Rig, provider_rig
from tests.support.live import eventually, running_worker
from tests.support.people import random_phone


@pytest.fixture(scope="module")
async def rig(settings: Settings, deps: Deps, client) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    queue = f"journeys-real-{uuid.uuid4().hex[:8]}"
    async with provider_rig(settings, deps, client, task_queue=queue) as r, running_worker(client, r.deps, queue):
        yield r


async def _patient_and_doctor(api: Api, clinic: dict, channel: str = "whatsapp") -> tuple[dict, dict]:
    desk = api.as_(Role.admin)
    d = await desk.post(
        "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": "Dr House", "specialty": "therapy"}
    )
    assert d.status_code == 201, d.text
    p = await desk.post(
        "/v1/patients",
        json={
            "full_name": "Olena Testenko",
            "phone": random_phone(),
            "clinic_id": clinic["id"],
            "preferred_channel": channel,
        },
    )
    assert p.status_code == 201, p.text
    return p.json(), d.json()


def _booking(patient: dict, doctor: dict, clinic: dict) -> dict:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    return {
        "patient_id": patient["id"],
        "clinic_id": clinic["id"],
        "doctor_id": doctor["id"],
        "starts_at": start.isoformat(),
        "duration_minutes": 30,
        "service": "Hygiene",
    }


async def test_sandbox_book_reply_confirmed(api: Api, clinic: dict) -> None:
    patient, doctor = await _patient_and_doctor(api, clinic)
    desk = api.as_(Role.front_desk)
    r = await desk.post("/v1/appointments", json=_booking(patient, doctor, clinic))
    assert r.status_code == 201, r.text
    appt = r.json()

    async def notice() -> list[dict]:
        m = await api.as_(Role.operator).get("/v1/sandbox/messages", params={"patient_id": patient["id"]})
        assert m.status_code == 200, m.text
        out = [x for x in m.json() if x["direction"] == "out"]
        assert out and out[0]["status"] == "sent"
        assert out[0]["provider_message_id"].startswith("sandbox-")
        return out

    out = await eventually(notice)
    assert out[0]["channel"] == "whatsapp" and out[0]["subject_id"] == appt["id"]
    assert (await api.http.get("/v1/sandbox/messages")).status_code == 401

    rep = await api.as_(Role.operator).post("/v1/sandbox/reply", json={"patient_id": patient["id"], "text": "так"})
    assert rep.status_code == 200, rep.text
    assert rep.json()["outcome"] == "signalled" and rep.json()["appointment_id"] == appt["id"]
    bad = await api.as_(Role.operator).post(
        "/v1/sandbox/reply", json={"patient_id": patient["id"], "text": "x", "digit": "1"}
    )
    assert bad.status_code == 422

    async def confirmed() -> None:
        g = await desk.get(f"/v1/appointments/{appt['id']}")
        assert g.json()["stage"] == "confirmed", g.json()

    await eventually(confirmed)


async def test_sandbox_endpoints_404_with_real_providers(rig: Rig, api: Api) -> None:
    async with httpx.AsyncClient(base_url=rig.api_url) as c:
        h = api.headers(Role.admin)
        assert (await c.get("/v1/sandbox/messages", headers=h)).status_code == 404
        assert (await c.post("/v1/sandbox/reply", headers=h, json={"patient_id": "x", "text": "y"})).status_code == 404


async def test_real_whatsapp_book_reply_confirmed(rig: Rig, api: Api, clinic: dict) -> None:
    patient, doctor = await _patient_and_doctor(api, clinic)
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.front_desk)) as c:
        r = await c.post("/v1/appointments", json=_booking(patient, doctor, clinic))
        assert r.status_code == 201, r.text
        appt = r.json()
        wa = patient["phone"].lstrip("+")

        async def notice() -> None:
            assert [x for x in rig.fake.sent("whatsapp") if x.json["to"] == wa]

        await eventually(notice)
        first = [x for x in rig.fake.sent("whatsapp") if x.json["to"] == wa][0].json
        assert first["type"] == "template"  # the patient has not written yet: no 24h window

        w = await rig.fake.patient_sends_whatsapp(patient["phone"], "Так")
        assert w.status_code == 200 and w.json()["results"] == ["signalled"], w.text

        async def confirmed() -> None:
            g = await c.get(f"/v1/appointments/{appt['id']}")
            assert g.json()["stage"] == "confirmed", g.json()

        await eventually(confirmed)
