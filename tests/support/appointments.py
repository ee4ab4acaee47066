"""Helpers shared by the appointment journey tests: a clinic with a compressed policy,
booking through the live API, reading what the sandbox provider "sent", replying as the
patient."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from temporalio.client import Client

from contracts.appointment import APPOINTMENT_REPLY_SIGNAL, appointment_workflow_id
from contracts.common import PatientReply
from core.deps import Deps
from models.core import MessageLog, Role
from tests.support.api import Api

FAST = {  # seconds instead of hours: a journey moves within a test
    "reminder_lead": 300,
    "reask_interval": 1.5,
    "reask_count": 3,
    "voice_call_after": 1.5,
    "voice_call_attempts": 1,
    "confirm_deadline": 5,
    "no_show_grace": 1,
    "feedback_delay": 1,
    "survey_timeout": 30,
    "quiet_hours": None,
}


def phone() -> str:
    return f"+38067{random.randint(1000000, 9999999)}"


async def make_clinic(
    api: Api, fields: dict[str, Any] | None = None, patient: dict[str, Any] | None = None, **policy: Any
) -> dict[str, Any]:
    """A clinic (extra clinic `fields`, e.g. language), its doctor and one patient (extra
    `patient` fields, e.g. language)."""
    admin = api.as_(Role.admin)
    r = await admin.post(
        "/v1/clinics",
        json={
            "name": f"Smile {uuid.uuid4().hex[:4]}",
            "address": "1 Khreshchatyk St, Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "review_url": "https://reviews.example/smile",
            "policy": {**FAST, **policy},
            **(fields or {}),
        },
    )
    assert r.status_code == 201, r.text
    clinic = r.json()
    r = await admin.post(
        "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": "Dr Shevchenko", "specialty": "implantology"}
    )
    assert r.status_code == 201, r.text
    clinic["doctor_id"] = r.json()["id"]
    clinic["patient_id"] = await add_patient(api, clinic, "Olena Test", **(patient or {}))
    return clinic


async def add_patient(api: Api, clinic: dict[str, Any], name: str, channel: str = "sms", **fields: Any) -> str:
    """A patient of `clinic` with a fresh phone (extra `fields`, e.g. birth_date); their id."""
    r = await api.as_(Role.admin).post(
        "/v1/patients",
        json={"full_name": name, "phone": phone(), "preferred_channel": channel, "clinic_id": clinic["id"], **fields},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def book(
    api: Api,
    clinic: dict[str, Any],
    in_seconds: float = 40,
    service: str | None = "Check-up",
    minutes: int = 30,
    service_code: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient_id": clinic["patient_id"],
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "starts_at": at(in_seconds),
        "duration_minutes": minutes,
    }
    if service is not None:
        body["service"] = service
    if service_code is not None:
        body["service_code"] = service_code
    r = await api.as_(Role.front_desk).post("/v1/appointments", json=body, **kw)
    assert r.status_code == 201, r.text
    return r.json()


async def state(api: Api, appointment_id: str) -> dict[str, Any]:
    r = await api.as_(Role.front_desk).get(f"/v1/appointments/{appointment_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def sent(deps: Deps, appointment_id: str) -> list[MessageLog]:
    """Outbound messages (and calls) the journey sent, oldest first."""
    async with deps.sessions() as s:
        q = (
            select(MessageLog)
            .where(MessageLog.subject_id == appointment_id, MessageLog.direction == "out")
            .order_by(col(MessageLog.created_at))
        )
        return list((await s.exec(q)).all())


async def reply(
    api: Api, clinic: dict[str, Any], text: str | None = None, digit: str | None = None, button_id: str | None = None
) -> dict[str, Any]:
    """The patient answers through the sandbox provider (the real inbound routing: the same
    path a webhook takes to the journey's `patient_reply` signal)."""
    r = await api.as_(Role.operator).post(
        "/v1/sandbox/reply",
        json={"patient_id": clinic["patient_id"], "text": text, "digit": digit, "button_id": button_id},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def signal_reply(client: Client, appointment_id: str, **kw: Any) -> None:
    """Straight to the signal (for replies no provider sends as such, e.g. call status)."""
    await client.get_workflow_handle(appointment_workflow_id(appointment_id)).signal(
        APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sandbox", provider_message_id=f"t-{uuid.uuid4().hex[:12]}", **kw)
    )


async def tasks(api: Api, appointment_id: str, state_: str = "open") -> list[dict[str, Any]]:
    # Every kind: an operator does not see the director's detractor_feedback tasks (#8).
    r = await api.as_(Role.admin).get("/v1/tasks", params={"subject_id": appointment_id, "state": state_})
    assert r.status_code == 200, r.text
    return r.json()


def events(view: dict[str, Any]) -> list[str]:
    return [h["event"] for h in view["history"]]
