"""Provider webhooks over real HTTP from the fake providers: signatures checked before
parsing, redeliveries with one effect, routing to the right appointment journey, opt-out,
unknown senders, delivery statuses, and how fast a webhook answers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlmodel import func, select
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from contracts.common import OutboundMessage, PatientReply, VoiceCall, button_id
from core.deps import Deps
from core.logging import configure_logging
from core.settings import Settings
from models.core import Channel, MessageLog, OperatorTask, Patient
from tests.support.fake_providers import TG_TOKEN, WA_VERIFY, Rig, provider_rig
from tests.support.live import eventually
from tests.support.people import People, random_chat_id, random_phone


@pytest.fixture(scope="module")
async def rig(settings: Settings, deps: Deps, client) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    async with provider_rig(settings, deps, client) as r:
        yield r


@pytest.fixture(scope="module")
def people(deps: Deps) -> People:
    return People(deps.sessions)


async def replies(h: WorkflowHandle, n: int) -> list:  # type: ignore[type-arg]
    async def check() -> list:  # type: ignore[type-arg]
        got = await h.query("replies", result_type=list[PatientReply])
        assert len(got) >= n, got
        return got

    return await eventually(check, timeout=15)


async def count_rows(rig: Rig, key: str) -> int:
    async with rig.deps.sessions() as s:
        return (
            await s.exec(select(func.count()).select_from(MessageLog).where(MessageLog.idempotency_key == key))
        ).one()


async def tasks(rig: Rig, kind: str, patient_id: str | None = None) -> list[OperatorTask]:
    async with rig.deps.sessions() as s:
        q = select(OperatorTask).where(OperatorTask.kind == kind)
        if patient_id:
            q = q.where(OperatorTask.patient_id == patient_id)
        return list((await s.exec(q)).all())


# ------------------------------------------------------------------ WhatsApp
async def test_whatsapp_verification_handshake(rig: Rig) -> None:
    url = f"{rig.api_url}/v1/webhooks/whatsapp"
    ok = await rig.fake.http.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY, "hub.challenge": "1158201444"}
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = await rig.fake.http.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert bad.status_code == 403


async def test_whatsapp_reply_signals_the_journey_once(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    try:
        wamid = f"wamid.{uuid.uuid4().hex}"
        r1 = await rig.fake.patient_sends_whatsapp(p.phone, "Так, буду", wamid=wamid)
        r2 = await rig.fake.patient_sends_whatsapp(p.phone, "Так, буду", wamid=wamid)
        assert r1.status_code == 200 and r1.json()["results"] == ["signalled"]
        assert r2.status_code == 200 and r2.json()["results"] == ["duplicate"]
        [reply] = await replies(h, 1)
        assert reply.source == "whatsapp" and reply.kind == "text" and reply.text == "Так, буду"
        assert reply.provider_message_id == wamid
        assert await count_rows(rig, f"in:whatsapp:{wamid}") == 1
    finally:
        await h.terminate()


async def test_whatsapp_bad_or_missing_signature_rejected_before_parsing(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    wamid = f"wamid.{uuid.uuid4().hex}"
    bad = await rig.fake.patient_sends_whatsapp(p.phone, "hi", wamid=wamid, sig="bad")
    missing = await rig.fake.patient_sends_whatsapp(p.phone, "hi", wamid=wamid, sig="none")
    assert bad.status_code == 403 and missing.status_code == 401
    # Not even JSON is looked at without a signature.
    junk = await rig.fake.http.post(
        f"{rig.api_url}/v1/webhooks/whatsapp", content=b"{not json", headers={"x-hub-signature-256": "sha256=00"}
    )
    assert junk.status_code == 403
    assert await count_rows(rig, f"in:whatsapp:{wamid}") == 0


async def test_button_naming_an_appointment_wins_over_the_nearest(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    near = await people.appointment(p.id, in_hours=5)
    later = await people.appointment(p.id, in_hours=72)
    h_near, h_later = await rig.start_probe(near.id), await rig.start_probe(later.id)
    try:
        r = await rig.fake.patient_presses_whatsapp_button(p.phone, button_id("confirm", later.id), "Так")
        assert r.json()["results"] == ["signalled"]
        [reply] = await replies(h_later, 1)
        assert reply.kind == "button" and reply.button_id == f"confirm:{later.id}"
        await rig.fake.patient_sends_whatsapp(p.phone, "буду")  # free text -> nearest
        [text] = await replies(h_near, 1)
        assert text.text == "буду"
        assert len(await h_later.query("replies")) == 1
    finally:
        await h_near.terminate()
        await h_later.terminate()


async def test_guardian_reply_goes_to_the_childs_appointment(rig: Rig, people: People) -> None:
    mum = await people.patient(Channel.whatsapp)
    child = await people.patient(Channel.whatsapp, phone=None, guardian_id=mum.id)
    appt = await people.appointment(child.id)
    h = await rig.start_probe(appt.id)
    try:
        await rig.fake.patient_sends_whatsapp(mum.phone, "так")
        [reply] = await replies(h, 1)
        assert reply.text == "так"
    finally:
        await h.terminate()


async def test_whatsapp_status_updates_the_message_log(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    m = OutboundMessage(
        idempotency_key=f"t-{uuid.uuid4().hex}",
        patient_id=p.id,
        clinic_id=await people.clinic(),
        kind="reminder",
        text="hello",
    )
    sent = await ActivityEnvironment().run(rig.messaging.send_patient_message, m)
    await rig.fake.whatsapp_status(sent.provider_message_id, "read", p.phone)
    await rig.fake.whatsapp_status(sent.provider_message_id, "delivered", p.phone)  # late
    async with rig.deps.sessions() as s:
        row = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == m.idempotency_key))).one()
    assert row.status == "read"


async def test_no_open_appointment_becomes_an_unread_task(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    await people.appointment(p.id, stage="finished")
    r = await rig.fake.patient_sends_whatsapp(p.phone, "Can I bring my son?")
    assert r.json()["results"] == ["unread"]
    [task] = await tasks(rig, "unread_message", p.id)
    assert task.details["text"] == "Can I bring my son?" and task.state == "requested"


async def test_unknown_sender_2xx_task_and_no_number_in_logs(rig: Rig) -> None:
    buf = io.StringIO()
    configure_logging("INFO", json_output=True)
    logging.getLogger().handlers[0].stream = buf  # type: ignore[attr-defined]
    stranger = random_phone()
    wamid = f"wamid.{uuid.uuid4().hex}"
    r = await rig.fake.patient_sends_whatsapp(stranger, "who is this", wamid=wamid)
    assert r.status_code == 200 and r.json()["results"] == ["unknown_sender"]
    [task] = [t for t in await tasks(rig, "unknown_sender") if t.dedup_key == f"unknown_sender:in:whatsapp:{wamid}"]
    assert task.details["from"] == stranger  # the operator can call back
    out = buf.getvalue()
    [line] = [json.loads(x) for x in out.splitlines() if "unknown sender" in x]
    assert line["channel"] == "whatsapp" and line["level"] == "warning"
    assert "[redacted]" not in json.dumps(line)  # nothing sensitive was even offered
    for needle in (stranger, stranger.lstrip("+"), stranger[-7:]):
        assert needle not in out


# ------------------------------------------------------------------ Telegram
async def test_telegram_message_and_callback(rig: Rig, people: People) -> None:
    chat = random_chat_id()
    p = await people.patient(Channel.telegram, phone=None, chat_id=chat)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    try:
        uid = rig.fake.next_update_id()
        r1 = await rig.fake.telegram_message(chat, "так", update_id=uid)
        r2 = await rig.fake.telegram_message(chat, "так", update_id=uid)
        assert r1.status_code == 200 and r1.json()["result"] == "signalled"
        assert r2.json()["result"] == "duplicate"
        before = len(rig.fake.sent("telegram", "answerCallbackQuery"))
        r3 = await rig.fake.telegram_callback(chat, button_id("decline", appt.id))
        assert r3.json()["result"] == "signalled"
        got = await replies(h, 2)
        assert [(x.kind, x.text, x.button_id) for x in got] == [
            ("text", "так", None),
            ("button", None, f"decline:{appt.id}"),
        ]
        answered = rig.fake.sent("telegram", "answerCallbackQuery")
        assert len(answered) == before + 1
        assert answered[-1].path == f"/tg/bot{TG_TOKEN}/answerCallbackQuery"
        assert answered[-1].json["callback_query_id"]
    finally:
        await h.terminate()


async def test_telegram_secret_checked(rig: Rig) -> None:
    assert (await rig.fake.telegram_message("1", "x", sig="bad")).status_code == 403
    assert (await rig.fake.telegram_message("1", "x", sig="none")).status_code == 401


# ------------------------------------------------------------------ Twilio
async def test_twilio_sms_reply_dedup_and_signature(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    try:
        sid = "SM" + uuid.uuid4().hex
        assert (await rig.fake.twilio_sms(p.phone, "1", sid=sid, sig="bad")).status_code == 403
        assert (await rig.fake.twilio_sms(p.phone, "1", sid=sid, sig="none")).status_code == 401
        assert await count_rows(rig, f"in:sms:{sid}") == 0
        r1 = await rig.fake.twilio_sms(p.phone, "1", sid=sid)
        r2 = await rig.fake.twilio_sms(p.phone, "1", sid=sid)
        assert r1.status_code == r2.status_code == 200
        assert r1.headers["content-type"].startswith("text/xml") and "<Response>" in r1.text
        [reply] = await replies(h, 1)
        assert reply.source == "sms" and reply.text == "1"
        assert await count_rows(rig, f"in:sms:{sid}") == 1
    finally:
        await h.terminate()


async def test_stop_then_start(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    clinic = await people.clinic()

    async def send() -> str:
        m = OutboundMessage(
            idempotency_key=f"t-{uuid.uuid4().hex}", patient_id=p.id, clinic_id=clinic, kind="reminder", text="hello"
        )
        return (await ActivityEnvironment().run(rig.messaging.send_patient_message, m)).status

    try:
        await rig.fake.twilio_sms(p.phone, "STOP")
        assert (await people.get(Patient, p.id)).opted_out
        assert await send() == "opted_out"
        await rig.fake.twilio_sms(p.phone, "start")
        assert not (await people.get(Patient, p.id)).opted_out
        assert await send() == "sent"
        # CANCEL is a carrier opt-out word, never "cancel my appointment".
        await rig.fake.twilio_sms(p.phone, "Cancel")
        assert (await people.get(Patient, p.id)).opted_out
        await rig.fake.telegram_message("1", "x")  # unrelated traffic
        chat_patient = await people.patient(Channel.whatsapp)
        await rig.fake.patient_sends_whatsapp(chat_patient.phone, "Стоп")
        assert (await people.get(Patient, chat_patient.id)).opted_out
        assert await h.query("replies") == []  # none of these reached the journey
    finally:
        await h.terminate()


async def test_voice_call_digit_and_status(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    clinic = await people.clinic()

    async def call() -> str:
        c = VoiceCall(
            idempotency_key=f"call-{uuid.uuid4().hex}",
            patient_id=p.id,
            clinic_id=clinic,
            prompt="Press 1 to confirm, 2 to decline",
            subject_id=appt.id,
        )
        r = await ActivityEnvironment().run(rig.messaging.place_voice_call, c)
        assert r.status == "sent"
        return r.provider_message_id

    try:
        sid = await call()
        r = await rig.fake.twilio_call_digit(sid, "1")
        assert r.status_code == 200 and "<Hangup/>" in r.text
        assert (await rig.fake.twilio_call_digit(sid, "1")).status_code == 200  # redelivered
        assert (await rig.fake.twilio_call_status(sid, "completed")).status_code == 204
        [digit] = await replies(h, 1)
        assert digit.kind == "digit" and digit.digit == "1" and digit.source == "voice"

        sid2 = await call()
        assert (await rig.fake.twilio_call_status(sid2, "no-answer", sig="bad")).status_code == 403
        await rig.fake.twilio_call_status(sid2, "no-answer")
        await rig.fake.twilio_call_status(sid2, "no-answer")  # redelivered
        got = await replies(h, 2)
        assert got[1].kind == "call_status" and got[1].call_status == "no-answer"
        await asyncio.sleep(0.3)
        assert len(await h.query("replies")) == 2
    finally:
        await h.terminate()


# ------------------------------------------------------------------ speed
async def test_webhook_latency(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    appt = await people.appointment(p.id)
    h = await rig.start_probe(appt.id)
    try:
        times = []
        for i in range(30):
            t0 = time.perf_counter()
            r = await rig.fake.patient_sends_whatsapp(p.phone, f"msg {i}")
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200
        times.sort()
        p50, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
        print(
            f"\nwhatsapp webhook -> signal: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms (n={len(times)})"
        )
        assert p50 < 250
        await replies(h, 30)
    finally:
        await h.terminate()
