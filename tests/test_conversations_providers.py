"""Staff answer patients through each provider's fake server (WhatsApp Cloud API with its
24-hour window, Telegram, Twilio SMS), the conversation thread, and a question whose
WhatsApp delivery failed moving on to SMS and then the robot call (issue 10)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import select

from core.deps import Deps
from core.settings import Settings
from models.core import MessageLog, Role
from tests.support.api import Api
from tests.support.appointments import at, make_clinic
from tests.support.fake_providers import TW_SID, Rig, provider_rig
from tests.support.live import eventually, running_worker
from tests.support.people import random_chat_id, random_phone


@pytest.fixture(scope="module")
async def rig(settings: Settings, deps: Deps, client) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    queue = f"journeys-conv-{uuid.uuid4().hex[:8]}"
    async with provider_rig(settings, deps, client, task_queue=queue) as r, running_worker(client, r.deps, queue):
        yield r


async def _patient(c: httpx.AsyncClient, clinic_id: str, channel: str, **kw: Any) -> dict[str, Any]:
    r = await c.post(
        "/v1/patients",
        json={
            "full_name": "Olha Pacientka",
            "phone": random_phone(),
            "clinic_id": clinic_id,
            "preferred_channel": channel,
            **kw,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def _wa_to(rig: Rig, phone: str) -> list[dict[str, Any]]:
    return [x.json for x in rig.fake.sent("whatsapp") if x.json and x.json["to"] == phone.lstrip("+")]


async def test_staff_reply_on_each_channel_and_the_thread(rig: Rig, api: Api, clinic: dict) -> None:
    admin = httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.admin))
    desk = httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.front_desk))
    operator = httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.operator))
    async with admin, desk, operator:
        wa = await _patient(desk, clinic["id"], "whatsapp")

        # WhatsApp, the patient never wrote: no free text, and the clinic has no template.
        r = await desk.post(f"/v1/patients/{wa['id']}/messages", json={"text": "Доброго дня! Це клініка."})
        assert r.status_code == 409, r.text
        assert r.json()["detail"]["reason"] == "whatsapp_window_closed" and "24-hour" in r.json()["detail"]["message"]
        assert _wa_to(rig, wa["phone"]) == []

        # With the clinic's approved template it goes out inside that template.
        r = await admin.patch(f"/v1/clinics/{clinic['id']}", json={"whatsapp_reply_template": "staff_reply"})
        assert r.status_code == 200, r.text
        r = await desk.post(f"/v1/patients/{wa['id']}/messages", json={"text": "Доброго дня! Це клініка."})
        assert r.status_code == 201, r.text
        assert r.json()["template"] == "staff_reply" and r.json()["status"] == "sent"
        (first,) = _wa_to(rig, wa["phone"])
        assert first["type"] == "template" and first["template"]["name"] == "staff_reply"
        assert first["template"]["components"][0]["parameters"][0]["text"] == "Доброго дня! Це клініка."

        # The patient writes: a person gets it (nothing to answer), and the window opens.
        w = await rig.fake.patient_sends_whatsapp(wa["phone"], "Коли мені прийти на контроль?")
        assert w.json()["results"] == ["unread"], w.text
        thread = (await desk.get(f"/v1/patients/{wa['id']}/conversation")).json()["items"]
        incoming = thread[-1]
        assert incoming["direction"] == "in" and incoming["task"]["kind"] == "unread_message"

        # Completing the task carries the answer: free text now (inside the window).
        r = await operator.post(
            f"/v1/tasks/{incoming['task']['id']}/complete", json={"reply": "Приходьте у вівторок о 10:00."}
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "completed" and "answered the patient" in r.json()["outcome"]
        last = _wa_to(rig, wa["phone"])[-1]
        assert last["type"] == "text" and last["text"]["body"] == "Приходьте у вівторок о 10:00."

        thread = (await desk.get(f"/v1/patients/{wa['id']}/conversation")).json()
        assert [(m["direction"], m["kind"]) for m in thread["items"]] == [
            ("out", "staff_message"),
            ("in", "reply"),
            ("out", "staff_message"),
        ]
        answer = thread["items"][-1]
        assert answer["task"] == {"id": incoming["task"]["id"], "kind": "unread_message", "state": "completed"}
        assert answer["sent_by"] and answer["template"] is None and thread["next_before"] is None
        assert thread["items"][1]["task"]["state"] == "completed"  # the message's task, resolved

        # Paginated backwards, newest last on every page.
        page = (await desk.get(f"/v1/patients/{wa['id']}/conversation", params={"limit": 2})).json()
        assert [m["id"] for m in page["items"]] == [m["id"] for m in thread["items"][1:]]
        older = (
            await desk.get(f"/v1/patients/{wa['id']}/conversation", params={"limit": 2, "before": page["next_before"]})
        ).json()
        assert [m["id"] for m in older["items"]] == [thread["items"][0]["id"]] and older["next_before"] is None

        # Telegram and SMS: no window; straight out on the patient's channel.
        tg = await _patient(desk, clinic["id"], "telegram", telegram_chat_id=random_chat_id())
        r = await desk.post(f"/v1/patients/{tg['id']}/messages", json={"text": "Ваші аналізи готові."})
        assert r.status_code == 201 and r.json()["channel"] == "telegram", r.text
        sent_tg = rig.fake.sent("telegram", "sendMessage")[-1].json
        assert sent_tg and str(sent_tg["chat_id"]) == tg["telegram_chat_id"]
        assert sent_tg["text"] == "Ваші аналізи готові."

        sms = await _patient(desk, clinic["id"], "sms")
        key = {"Idempotency-Key": f"desk-{uuid.uuid4().hex}"}
        r = await desk.post(f"/v1/patients/{sms['id']}/messages", json={"text": "Нагадуємо про оплату."}, headers=key)
        assert r.status_code == 201 and r.json()["channel"] == "sms", r.text
        form = rig.fake.sent("twilio", "Messages")[-1].form
        assert form and form["To"] == sms["phone"] and form["Body"] == "Нагадуємо про оплату."
        n = len(rig.fake.sent("twilio", "Messages"))
        again = await desk.post(
            f"/v1/patients/{sms['id']}/messages", json={"text": "Нагадуємо про оплату."}, headers=key
        )
        assert again.status_code == 201 and again.json()["id"] == r.json()["id"]  # the same request: sent once
        assert len(rig.fake.sent("twilio", "Messages")) == n

        # A subject must be the patient's own; doctors do not write; an opted-out patient: 409.
        r = await desk.post(
            f"/v1/patients/{sms['id']}/messages",
            json={"text": "x", "subject": {"type": "appointment", "id": uuid.uuid4().hex}},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "subject", "id"], r.text
        doctor = {"Authorization": f"Bearer {api.tokens[Role.doctor]}"}
        r = await desk.post(f"/v1/patients/{sms['id']}/messages", json={"text": "x"}, headers=doctor)
        assert r.status_code == 403
        await rig.fake.twilio_sms(sms["phone"], "STOP")
        n = len(rig.fake.sent("twilio", "Messages"))
        r = await desk.post(f"/v1/patients/{sms['id']}/messages", json={"text": "Ви тут?"})
        assert r.status_code == 409 and r.json()["detail"]["reason"] == "opted_out", r.text
        assert len(rig.fake.sent("twilio", "Messages")) == n


async def _rows(deps: Deps, appointment_id: str) -> list[MessageLog]:
    async with deps.sessions() as s:
        q = select(MessageLog).where(MessageLog.subject_id == appointment_id, MessageLog.direction == "out")
        return sorted((await s.exec(q)).all(), key=lambda m: m.created_at)


async def test_failed_whatsapp_ask_falls_back_to_sms_then_the_call(rig: Rig, api: Api, deps: Deps) -> None:
    """The ask's WhatsApp delivery fails: the journey asks again by SMS at once (not at the
    deadline); that SMS comes back undelivered: the robot call goes out."""
    clinic = await make_clinic(
        api,
        reminder_lead=3600,
        reask_count=0,
        voice_call_attempts=1,
        voice_call_after=3600,  # on its own, the journey would never call before the deadline
        confirm_deadline=5,
    )
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.front_desk)) as c:
        patient = await _patient(c, clinic["id"], "whatsapp")
        r = await c.post(
            "/v1/appointments",
            json={
                "patient_id": patient["id"],
                "clinic_id": clinic["id"],
                "doctor_id": clinic["doctor_id"],
                "starts_at": at(900),
                "duration_minutes": 15,
                "service": "Hygiene",
            },
        )
        assert r.status_code == 201, r.text
        appt = r.json()

        async def ask_on(channel: str, kind: str) -> MessageLog:
            rows = [m for m in await _rows(deps, appt["id"]) if m.kind == kind and m.channel.value == channel]
            assert rows and rows[-1].status == "sent" and rows[-1].question_id, rows
            return rows[-1]

        ask = await eventually(lambda: ask_on("whatsapp", "reminder"), timeout=60)
        w = await rig.fake.whatsapp_status(ask.provider_message_id or "", "failed", patient["phone"])
        assert w.status_code == 200, w.text

        resent = await eventually(lambda: ask_on("sms", "reask"), timeout=60)
        assert resent.body == ask.body
        form = rig.fake.sent("twilio", "Messages")[-1].form
        assert form and form["To"] == patient["phone"]
        view = (await c.get(f"/v1/appointments/{appt['id']}")).json()
        events = [h["event"] for h in view["history"]]
        assert "ask_failed" in events and "ask_resent_sms" in events and view["voice_calls"] == 0

        r = await rig.fake.twilio_post(
            "/v1/webhooks/twilio/sms/status",
            {
                "MessageSid": resent.provider_message_id or "",
                "AccountSid": TW_SID,
                "MessageStatus": "undelivered",
                "ErrorCode": "30003",
            },
        )
        assert r.status_code == 204, r.text

        async def called() -> None:
            calls = [x for x in rig.fake.sent("twilio", "Calls") if x.form and x.form["To"] == patient["phone"]]
            assert calls
            v = (await c.get(f"/v1/appointments/{appt['id']}")).json()
            assert v["voice_calls"] == 1 and v["stage"] == "booked"

        await eventually(called, timeout=60)


async def test_undelivered_lab_question_moves_to_sms_then_a_person(rig: Rig, api: Api, deps: Deps) -> None:
    """The plan's lab-results question fails on WhatsApp: it goes again by SMS; that SMS is
    undelivered too: an operator calls (plan_callback)."""
    clinic = await make_clinic(api, lab_results_after=1)
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.doctor)) as c:
        patient = await _patient(c, clinic["id"], "whatsapp")
        r = await c.post(
            "/v1/treatment-plans",
            json={
                "patient_id": patient["id"],
                "clinic_id": clinic["id"],
                "direction": "therapy",
                "items": [{"service": "Filling", "tooth": 26, "unit_price": "1800.00"}],
            },
        )
        assert r.status_code == 201, r.text
        plan = r.json()
        r = await c.post(f"/v1/treatment-plans/{plan['id']}/advance", json={"to_stage": "lab_tests"})
        assert r.status_code == 200, r.text

        async def asked_on(channel: str) -> MessageLog:
            rows = [m for m in await _rows(deps, plan["id"]) if m.channel.value == channel and m.status == "sent"]
            assert rows and rows[-1].question_id, rows
            return rows[-1]

        wa = await eventually(lambda: asked_on("whatsapp"), timeout=60)
        assert (
            await rig.fake.whatsapp_status(wa.provider_message_id or "", "failed", patient["phone"])
        ).status_code == 200
        sms = await eventually(lambda: asked_on("sms"), timeout=60)
        assert sms.kind == "lab_results_ask" and sms.idempotency_key == f"{wa.idempotency_key}:after-whatsapp"
        r = await rig.fake.twilio_post(
            "/v1/webhooks/twilio/sms/status",
            {"MessageSid": sms.provider_message_id or "", "AccountSid": TW_SID, "MessageStatus": "undelivered"},
        )
        assert r.status_code == 204, r.text

        async def person_calls() -> list[dict[str, Any]]:
            t = await c.get(
                "/v1/tasks",
                params={"subject_id": plan["id"], "kind": "plan_callback"},
                headers=api.headers(Role.operator),
            )
            assert t.status_code == 200 and t.json(), t.text
            return list(t.json())

        (task,) = await eventually(person_calls, timeout=60)
        assert "lab test results" in task["title"]


async def test_undelivered_campaign_invitation_moves_to_sms(rig: Rig, api: Api, deps: Deps) -> None:
    """A recall invitation WhatsApp reports as failed goes again by SMS (issue 12)."""
    from datetime import UTC, datetime, timedelta

    from contracts.campaigns import CAMPAIGN_RUN_WORKFLOW, RunInput, RunResult
    from models.appointment import Appointment
    from models.campaigns import CampaignSend

    clinic = await make_clinic(api)
    async with httpx.AsyncClient(base_url=rig.api_url, timeout=30, headers=api.headers(Role.director)) as c:
        patient = await _patient(c, clinic["id"], "whatsapp")
        async with deps.sessions() as s:
            last = datetime.now(UTC) - timedelta(days=166)
            s.add(
                Appointment(
                    clinic_id=clinic["id"],
                    doctor_id=clinic["doctor_id"],
                    patient_id=patient["id"],
                    service="Гигиена",
                    starts_at=last,
                    ends_at=last + timedelta(minutes=30),
                    duration_minutes=30,
                    stage="finished",
                    workflow_id=f"appointment-{uuid.uuid4().hex}",
                )
            )
            await s.commit()
        r = await c.put(
            f"/v1/clinics/{clinic['id']}/campaigns/recall",
            json={"enabled": True, "reask_after": None, "answer_window": "PT20S"},
        )
        assert r.status_code == 200, r.text
    result = await rig.client.execute_workflow(
        CAMPAIGN_RUN_WORKFLOW,
        RunInput(clinic_id=clinic["id"], kind="recall"),
        id=f"campaign-recall-{clinic['id']}-test",
        task_queue=rig.settings.temporal_task_queue,
        result_type=RunResult,
    )
    assert result.started == 1, result
    async with deps.sessions() as s:
        send = (await s.exec(select(CampaignSend).where(CampaignSend.patient_id == patient["id"]))).one()

    async def asked_on(channel: str) -> MessageLog:
        rows = [m for m in await _rows(deps, send.id) if m.channel.value == channel and m.status == "sent"]
        assert rows and rows[-1].question_id, rows
        return rows[-1]

    wa = await eventually(lambda: asked_on("whatsapp"), timeout=60)
    assert wa.kind == "campaign.recall.invite"
    r = await rig.fake.whatsapp_status(wa.provider_message_id or "", "failed", patient["phone"])
    assert r.status_code == 200, r.text
    sms = await eventually(lambda: asked_on("sms"), timeout=60)
    assert sms.kind == "campaign.recall.invite" and sms.idempotency_key == f"{wa.idempotency_key}:after-whatsapp"

    async def closed() -> None:
        async with deps.sessions() as s:
            row = await s.get(CampaignSend, send.id)
            assert row is not None and row.state == "no_answer", row

    await eventually(closed, timeout=90)
