"""Edges of issue 16 (durable under faults), each seen the way it broke: concurrent bookings
on SQLite, concurrent retries of one Idempotency-Key, a booking row left without a journey,
a webhook redelivered after a 503, unbounded policy values and the 5xx a client could cause."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.appointment import appointment_workflow_id
from core.deps import Deps
from core.settings import Settings
from models.appointment import Appointment
from models.core import Channel, MessageLog, Role, utcnow
from tests.support.api import Api
from tests.support.appointments import FAST, at, make_clinic
from tests.support.fake_providers import TG_SECRET, Rig, provider_rig
from tests.support.live import eventually
from tests.support.people import People


async def _journey_exists(client: Client, appointment_id: str) -> bool:
    try:
        await client.get_workflow_handle(appointment_workflow_id(appointment_id)).describe()
        return True
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


# ------------------------------------------------------------------ 5: SQLite double booking
async def test_twenty_concurrent_overlapping_bookings_of_one_doctor_accept_one(api: Api, settings: Settings) -> None:
    """The session API runs on SQLite (the `make run` default): the slot check and the insert
    are serialized, so of 20 overlapping bookings fired at once exactly one is accepted."""
    assert settings.database_url.startswith("sqlite")
    clinic = await make_clinic(api, reminder_lead=3600)
    desk = api.as_(Role.front_desk)
    base = 3 * 3600

    async def one(i: int) -> httpx.Response:
        return await desk.post(
            "/v1/appointments",
            json={
                "patient_id": clinic["patient_id"],
                "clinic_id": clinic["id"],
                "doctor_id": clinic["doctor_id"],
                "starts_at": at(base + (i % 5) * 60),  # every slot overlaps every other
                "duration_minutes": 30,
                "service": "Check-up",
            },
        )

    results = await asyncio.gather(*[one(i) for i in range(20)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1, codes
    assert codes.count(409) == 19, [r.text for r in results if r.status_code not in (201, 409)]
    r = await desk.get("/v1/appointments", params={"doctor_id": clinic["doctor_id"]})
    assert len(r.json()) == 1


# ------------------------------------------------------------------ 6: one key, concurrent retries
async def test_concurrent_retries_of_one_idempotency_key_get_the_same_appointment(api: Api) -> None:
    clinic = await make_clinic(api, reminder_lead=3600)
    desk = api.as_(Role.front_desk)
    body = {
        "patient_id": clinic["patient_id"],
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "starts_at": at(3 * 3600),
        "duration_minutes": 30,
        "service": "Check-up",
    }
    key = f"retry-{uuid.uuid4().hex}"
    results = await asyncio.gather(
        *[desk.post("/v1/appointments", json=body, headers={"Idempotency-Key": key}) for _ in range(10)]
    )
    assert [r.status_code for r in results] == [201] * 10, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    r = await desk.get("/v1/appointments", params={"doctor_id": clinic["doctor_id"]})
    assert len(r.json()) == 1


# ------------------------------------------------------------------ 4: no row without a journey
async def test_booking_row_left_by_a_dead_api_gets_its_journey(api: Api, deps: Deps, client: Client) -> None:
    """What an API killed between the row's commit and the journey's start leaves behind: a
    committed `booked` row with nothing running. The API's repair starts its journey within
    seconds (the real kill -9 is in test_api_killed.py)."""
    clinic = await make_clinic(api, reminder_lead=3600)
    async with deps.sessions() as s:
        appt = Appointment(
            clinic_id=clinic["id"],
            doctor_id=clinic["doctor_id"],
            patient_id=clinic["patient_id"],
            service="Check-up",
            starts_at=utcnow() + timedelta(hours=3),
            ends_at=utcnow() + timedelta(hours=3, minutes=30),
            duration_minutes=30,
            workflow_id="",
            journey_started=False,
            created_at=utcnow() - timedelta(seconds=30),
        )
        appt.workflow_id = appointment_workflow_id(appt.id)
        appt.history = [{"at": utcnow().isoformat(), "event": "booked", "stage": "booked"}]
        s.add(appt)
        await s.commit()
    assert not await _journey_exists(client, appt.id)

    async def repaired() -> None:
        assert await _journey_exists(client, appt.id)
        async with deps.sessions() as s:
            row = await s.get(Appointment, appt.id)
            assert row is not None and row.journey_started

    await eventually(repaired, timeout=60)
    view = (await api.as_(Role.front_desk).get(f"/v1/appointments/{appt.id}")).json()
    assert view["live"] and view["stage"] == "booked", view


# ------------------------------------------------------------------ 7: webhook after a 503
@pytest.fixture
async def rig(settings: Settings, deps: Deps, client: Client) -> AsyncIterator[Rig]:
    async with provider_rig(settings, deps, client) as r:
        yield r


async def test_whatsapp_reply_redelivered_after_a_503_reaches_the_journey(rig: Rig, deps: Deps) -> None:
    """Temporal away: the reply is answered 503. The provider's redelivery a second later (still
    down) must not be taken for a duplicate, and the one after Temporal is back is processed."""
    people = People(deps.sessions)
    p = await people.patient(Channel.whatsapp)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    temporal = rig.app.state.temporal
    wamid = f"wamid.{uuid.uuid4().hex}"
    try:
        rig.app.state.temporal = None  # Temporal is down for this API
        first = await rig.fake.patient_sends_whatsapp(p.phone, "Так, буду", wamid=wamid)
        assert first.status_code == 503, first.text
        await asyncio.sleep(1)
        again = await rig.fake.patient_sends_whatsapp(p.phone, "Так, буду", wamid=wamid)
        assert again.status_code == 503, again.text  # not "duplicate": it was never processed
        rig.app.state.temporal = temporal  # Temporal is back
        later = await rig.fake.patient_sends_whatsapp(p.phone, "Так, буду", wamid=wamid)
        assert later.status_code == 200 and later.json()["results"] == ["signalled"], later.text

        async def got() -> None:
            replies = await h.query("replies")
            assert len(replies) == 1, replies

        await eventually(got, timeout=15)
        # ...and only what was processed is a duplicate now.
        dup = await rig.fake.patient_sends_whatsapp(p.phone, "Так, буду", wamid=wamid)
        assert dup.status_code == 200 and dup.json()["results"] == ["duplicate"]
        async with deps.sessions() as s:
            rows = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == f"in:whatsapp:{wamid}"))).all()
        assert [r.status for r in rows] == ["signalled"]
    finally:
        rig.app.state.temporal = temporal
        await h.terminate()


async def test_api_without_temporal_answers_503_with_retry_after(rig: Rig, api: Api) -> None:
    """While the API has no Temporal connection, journey calls are 503 + Retry-After (they were
    500), nothing is written, and reads fall back to the database's copy."""
    temporal = rig.app.state.temporal
    clinic = await make_clinic(api, reminder_lead=3600)
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30) as http:
        headers = api.headers(Role.front_desk)
        body = {
            "patient_id": clinic["patient_id"],
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": at(3 * 3600),
            "duration_minutes": 30,
            "service": "Check-up",
        }
        ok = await http.post("/v1/appointments", json=body, headers=headers)
        assert ok.status_code == 201, ok.text
        try:
            rig.app.state.temporal = None
            r = await http.post("/v1/appointments", json={**body, "starts_at": at(5 * 3600)}, headers=headers)
            assert r.status_code == 503 and r.headers.get("retry-after"), r.text
            r = await http.post(f"/v1/appointments/{ok.json()['id']}/confirm", json={}, headers=headers)
            assert r.status_code == 503 and r.headers.get("retry-after"), r.text
            r = await http.get(f"/v1/appointments/{ok.json()['id']}", headers=headers)
            assert r.status_code == 200 and r.json()["live"] is False, r.text
            r = await http.get("/v1/appointments", params={"doctor_id": clinic["doctor_id"]}, headers=headers)
            assert len(r.json()) == 1  # the refused booking left nothing behind
        finally:
            rig.app.state.temporal = temporal


# ------------------------------------------------------------------ 9: bounded policy
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reminder_lead", "P999999D"),
        ("reminder_lead", "P31D"),
        ("reask_interval", "P8D"),
        ("voice_call_after", "P8D"),
        ("confirm_deadline", "P8D"),
        ("no_show_grace", "P2D"),
        ("feedback_delay", "P31D"),
        ("survey_timeout", "P91D"),
        ("lab_results_after", "P366D"),
        ("survey_timeout", 1e300),
        ("no_show_grace", -5),
        ("reask_count", 11),
        ("voice_call_attempts", 6),
        ("max_history_events", 10**9),
    ],
)
async def test_every_policy_field_is_bounded(api: Api, field: str, value: Any) -> None:
    admin = api.as_(Role.admin)
    r = await admin.post(
        "/v1/clinics",
        json={
            "name": "Smile",
            "address": "Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "policy": {**FAST, field: value},
        },
    )
    assert r.status_code == 422, r.text
    assert any(field in err["loc"] for err in r.json()["detail"]), r.text
    # ...and the same on a change of an existing clinic's policy.
    clinic = await make_clinic(api)
    r = await admin.patch(f"/v1/clinics/{clinic['id']}", json={"policy": {field: value}})
    assert r.status_code == 422, r.text
    assert any(field in err["loc"] for err in r.json()["detail"]), r.text


# ------------------------------------------------------------------ 10: the 5xx a client caused
BIG = "9223372036854775808"


@pytest.mark.parametrize(
    "path", ["/v1/appointments", "/v1/tasks", "/v1/treatment-plans", "/v1/invoices", "/v1/patients"]
)
async def test_huge_offset_is_422_on_every_list(api: Api, path: str) -> None:
    r = await api.as_(Role.admin).get(path, params={"offset": BIG})
    assert r.status_code == 422, (path, r.status_code, r.text)


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
async def test_appointments_on_the_calendars_edges_are_not_5xx(api: Api, day: str) -> None:
    r = await api.as_(Role.admin).get("/v1/appointments", params={"date": day})
    assert r.status_code < 500, r.text


async def test_booking_at_the_end_of_time_is_422(api: Api) -> None:
    clinic = await make_clinic(api)
    for starts_at in ("9999-12-31T23:50:00+00:00", "0001-01-01T00:10:00+03:00"):
        r = await api.as_(Role.front_desk).post(
            "/v1/appointments",
            json={
                "patient_id": clinic["patient_id"],
                "clinic_id": clinic["id"],
                "doctor_id": clinic["doctor_id"],
                "starts_at": starts_at,
                "duration_minutes": 30,
                "service": "Check-up",
            },
        )
        assert r.status_code == 422 and "starts_at" in r.text, r.text


async def test_lone_surrogate_in_a_name_is_422_and_writes_nothing(api: Api) -> None:
    admin = api.as_(Role.admin)
    name = f"Olena {uuid.uuid4().hex[:6]}"
    raw = json.dumps({"full_name": name + "\ud800", "phone": "+380671112233", "preferred_channel": "sms"})
    r = await admin.post("/v1/patients", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    # A proper pair (an emoji) is a character and fine.
    raw = json.dumps({"full_name": name + " \U0001f600", "phone": "+380671112244", "preferred_channel": "sms"})
    r = await admin.post("/v1/patients", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


async def test_non_ascii_secrets_and_signatures_are_4xx(rig: Rig, api: Api) -> None:
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30) as http:
        body = b'{"entry": []}'
        r = await http.post(
            "/v1/webhooks/whatsapp",
            content=body,
            headers={"x-hub-signature-256": "sha256=\u00e9".encode()},
        )
        assert r.status_code == 403, r.text
        r = await http.get("/v1/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "é"})
        assert r.status_code == 403, r.text
        r = await http.post(
            "/v1/webhooks/telegram",
            content=b'{"update_id": 1}',
            headers={"x-telegram-bot-api-secret-token": "é".encode()},
        )
        assert r.status_code == 403, r.text
        r = await http.post(
            "/v1/webhooks/twilio/sms",
            content=b"MessageSid=SM1",
            headers={"x-twilio-signature": "é".encode(), "content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 403, r.text
        for codec_path in ("/codec/decode", "/codec/k/%C3%A9/decode"):
            r = await http.post(codec_path, params={"secret": "é"}, json={"payloads": []})
            assert r.status_code in (401, 403, 404), (codec_path, r.status_code, r.text)


async def test_telegram_update_id_1e400_is_400(rig: Rig) -> None:
    r = await rig.fake.http.post(
        f"{rig.api_url}/v1/webhooks/telegram",
        content=b'{"update_id": 1e400, "message": {"chat": {"id": 1}}}',
        headers={"x-telegram-bot-api-secret-token": TG_SECRET, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text


async def test_whatsapp_timestamp_that_can_never_parse_is_2xx_and_recorded(rig: Rig, deps: Deps) -> None:
    """A permanent parse failure must not ask the provider to retry forever."""
    people = People(deps.sessions)
    p = await people.patient(Channel.whatsapp)
    wamid = f"wamid.{uuid.uuid4().hex}"
    wa = p.phone.lstrip("+")
    payload = rig.fake._wa_envelope(
        {"messages": [{"from": wa, "id": wamid, "timestamp": "abc", "type": "text", "text": {"body": "Так"}}]}
    )
    r = await rig.fake.whatsapp_notify(payload)
    assert r.status_code == 200, r.text
    async with deps.sessions() as s:
        row = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == f"in:whatsapp:{wamid}"))).one()
    assert row.status != "received"


# ------------------------------------------------------------------ 11: /health and a dead worker
async def test_health_sees_the_only_worker_gone_within_seconds(settings: Settings, deps: Deps, client: Client) -> None:
    """An idle live worker stays healthy (its long polls are renewed), and once the only
    worker is gone /health says so within HEALTH_POLLER_WINDOW, not minutes later."""
    from core.health import missing
    from tests.support.live import running_worker

    tq = f"health-{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"temporal_task_queue": tq})
    loop = asyncio.get_running_loop()
    async with running_worker(client, deps, tq):

        async def healthy() -> None:
            assert await missing(s, deps.engine, client) == []

        await eventually(healthy, timeout=30)
        idle_until = loop.time() + 1.5 * s.health_poller_window  # idle longer than the window
        while loop.time() < idle_until:
            assert await missing(s, deps.engine, client) == [], "an idle live worker was reported missing"
            await asyncio.sleep(2)
    gone = loop.time()

    async def noticed() -> None:
        assert any("no worker" in m for m in await missing(s, deps.engine, client))

    await eventually(noticed, timeout=s.health_poller_window + 30, interval=1)
    print(f"worker gone noticed after {loop.time() - gone:.1f} s")


# ------------------------------------------------------------------ 8: API started before Temporal
async def test_api_started_while_temporal_is_down_recovers_by_itself(settings: Settings, api: Api) -> None:
    """The API comes up with Temporal unreachable: journey calls are 503 + Retry-After (not
    500), and once a Temporal server appears at the address the same process books again."""

    from api.main import create_app
    from core.temporal import start_dev_server
    from tests.support.live import free_port, serve

    clinic = await make_clinic(api, reminder_lead=3600)
    temporal_port = free_port()
    s = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{temporal_port}", "temporal_task_queue": f"late-{uuid.uuid4().hex[:6]}"}
    )
    body = {
        "patient_id": clinic["patient_id"],
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "starts_at": at(3 * 3600),
        "duration_minutes": 30,
        "service": "Check-up",
    }
    headers = api.headers(Role.front_desk)
    async with serve(create_app(s), free_port()) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        r = await http.post("/v1/appointments", json=body, headers=headers)
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        r = await http.get("/v1/appointments", params={"doctor_id": clinic["doctor_id"]}, headers=headers)
        assert r.json() == []  # nothing half-written
        env = await start_dev_server(temporal_port)
        try:

            async def books() -> None:
                r = await http.post("/v1/appointments", json=body, headers=headers)
                assert r.status_code == 201, r.text

            await eventually(books, timeout=60, interval=1)
        finally:
            await env.shutdown()
