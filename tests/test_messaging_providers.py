"""send_patient_message / place_voice_call against the fake providers over real HTTP:
request shapes, idempotency, guardian, opt-out, channel fallback, the WhatsApp 24-hour
window, and "the worker died during the send -> no duplicate"."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlmodel import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from contracts.common import Button, MessageFacts, OutboundMessage, SendResult, VoiceCall, button_id
from core.deps import Deps
from core.settings import Settings
from models.core import Channel, MessageLog
from tests.support.fake_providers import TG_TOKEN, TW_FROM, TW_SID, TW_TOKEN, WA_TOKEN, Rig, provider_rig
from tests.support.live import eventually
from tests.support.people import People, random_chat_id


@pytest.fixture(scope="module")
async def rig(settings: Settings, deps: Deps, client) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    async with provider_rig(settings, deps, client) as r:
        yield r


@pytest.fixture(scope="module")
def people(deps: Deps) -> People:
    return People(deps.sessions)


def msg(
    patient_id: str,
    clinic_id: str,
    text: str = "Reminder: tomorrow 10:00",
    buttons: list[Button] | None = None,
    key: str | None = None,
    template: str | None = None,
) -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=key or f"test-{uuid.uuid4().hex}",
        patient_id=patient_id,
        clinic_id=clinic_id,
        kind="reminder",
        text=text,
        subject_id="appt-1",
        buttons=buttons or [],
        template=template,
    )


async def send(rig: Rig, m: OutboundMessage) -> SendResult:
    return await ActivityEnvironment().run(rig.messaging.send_patient_message, m)


async def row(rig: Rig, key: str) -> MessageLog:
    async with rig.deps.sessions() as s:
        r = (await s.exec(select(MessageLog).where(MessageLog.idempotency_key == key))).first()
    assert r is not None
    return r


async def test_whatsapp_template_outside_24h_then_free_text_inside(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    clinic = await people.clinic()
    buttons = [
        Button(button_id("confirm", "a1"), "Так, буду"),
        Button(button_id("decline", "a1"), "Ні, не зможу прийти"),
    ]
    r = await send(rig, msg(p.id, clinic, buttons=buttons))
    assert r.status == "sent" and r.channel == "whatsapp" and r.provider_message_id.startswith("wamid.")
    [req] = rig.fake.sent("whatsapp")[-1:]
    assert req.path == "/wa/v21.0/1098765432/messages"
    assert req.headers["authorization"] == f"Bearer {WA_TOKEN}"
    body = req.json
    assert body["messaging_product"] == "whatsapp" and body["to"] == p.phone.lstrip("+")
    assert body["type"] == "template"  # the patient never wrote: outside the window
    assert body["template"]["name"] == "appointment_notice"
    comps = body["template"]["components"]
    assert comps[0] == {"type": "body", "parameters": [{"type": "text", "text": "Reminder: tomorrow 10:00"}]}
    assert [c["parameters"][0]["payload"] for c in comps[1:]] == ["confirm:a1", "decline:a1"]

    # The patient writes (no appointment: an operator task) -> the 24-hour window opens.
    w = await rig.fake.patient_sends_whatsapp(p.phone, "Добрий день")
    assert w.status_code == 200, w.text
    r = await send(rig, msg(p.id, clinic, buttons=buttons))
    body = rig.fake.sent("whatsapp")[-1].json
    assert body["type"] == "interactive"
    inter = body["interactive"]
    assert inter["type"] == "button" and inter["body"]["text"] == "Reminder: tomorrow 10:00"
    assert [b["reply"] for b in inter["action"]["buttons"]] == [
        {"id": "confirm:a1", "title": "Так, буду"},
        {"id": "decline:a1", "title": "Ні, не зможу прийти"[:20]},
    ]
    r = await send(rig, msg(p.id, clinic, text="plain"))
    assert rig.fake.sent("whatsapp")[-1].json["type"] == "text"
    assert rig.fake.sent("whatsapp")[-1].json["text"] == {"preview_url": False, "body": "plain"}


async def test_telegram_send_with_inline_keyboard(rig: Rig, people: People) -> None:
    chat = random_chat_id()
    p = await people.patient(Channel.telegram, chat_id=chat)
    buttons = [Button(button_id("confirm", "a" * 32), "Так"), Button(button_id("decline", "a" * 32), "Ні")]
    r = await send(rig, msg(p.id, await people.clinic(), buttons=buttons))
    assert r.status == "sent" and r.channel == "telegram" and r.provider_message_id.isdigit()
    req = rig.fake.sent("telegram", "sendMessage")[-1]
    assert req.path == f"/tg/bot{TG_TOKEN}/sendMessage"
    assert req.json["chat_id"] == chat
    kb = req.json["reply_markup"]["inline_keyboard"]
    assert kb == [
        [
            {"text": "Так", "callback_data": "confirm:" + "a" * 32},
            {"text": "Ні", "callback_data": "decline:" + "a" * 32},
        ]
    ]
    assert all(len(k["callback_data"].encode()) <= 64 for k in kb[0])


async def test_twilio_sms_request_shape(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    r = await send(rig, msg(p.id, await people.clinic(), text="SMS reminder"))
    assert r.status == "sent" and r.channel == "sms" and r.provider_message_id.startswith("SM")
    req = rig.fake.sent("twilio", "Messages")[-1]
    assert req.path == f"/twilio/2010-04-01/Accounts/{TW_SID}/Messages.json"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(f"{TW_SID}:{TW_TOKEN}".encode()).decode()
    assert req.form["To"] == p.phone and req.form["From"] == TW_FROM
    assert req.form["Body"] == "SMS reminder"
    assert req.form["StatusCallback"] == f"{rig.settings.public_base_url}/v1/webhooks/twilio/sms/status"


async def test_same_key_twice_sends_once(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    m = msg(p.id, await people.clinic())
    before = len(rig.fake.sent("twilio"))
    first = await send(rig, m)
    second = await send(rig, m)
    assert len(rig.fake.sent("twilio")) == before + 1
    assert not first.duplicate and second.duplicate
    assert second.status == "sent" and second.provider_message_id == first.provider_message_id


async def test_guardian_receives_a_childs_message(rig: Rig, people: People) -> None:
    mum = await people.patient(Channel.whatsapp)
    child = await people.patient(Channel.sms, phone=None, guardian_id=mum.id)
    m = msg(child.id, await people.clinic())
    r = await send(rig, m)
    assert r.status == "sent" and r.channel == "whatsapp"
    assert rig.fake.sent("whatsapp")[-1].json["to"] == mum.phone.lstrip("+")
    logged = await row(rig, m.idempotency_key)
    assert logged.patient_id == child.id and logged.recipient_id == mum.id


async def test_opted_out_patient_gets_nothing(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms, opted_out=True)
    before = len(rig.fake.requests)
    r = await send(rig, msg(p.id, await people.clinic()))
    assert r.status == "opted_out"
    assert len(rig.fake.requests) == before
    # Nor does a child whose guardian opted out.
    child = await people.patient(Channel.sms, phone=None, guardian_id=p.id)
    assert (await send(rig, msg(child.id, await people.clinic()))).status == "opted_out"
    assert len(rig.fake.requests) == before


async def test_messenger_refused_for_good_falls_back_to_sms(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    rig.fake.fail_next("whatsapp", 400, {"error": {"message": "(#131026) Message undeliverable", "code": 131026}})
    m = msg(p.id, await people.clinic())
    r = await send(rig, m)
    assert r.status == "sent" and r.channel == "sms"
    assert rig.fake.sent("twilio", "Messages")[-1].form["To"] == p.phone
    logged = await row(rig, m.idempotency_key)
    assert logged.channel == Channel.sms and logged.payload["attempts"][0]["channel"] == "whatsapp"


async def test_no_channel_left(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.telegram, phone=None, chat_id=random_chat_id())
    rig.fake.fail_next(
        "telegram", 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    )
    r = await send(rig, msg(p.id, await people.clinic()))
    assert r.status == "failed"
    nobody = await people.patient(Channel.sms, phone=None)
    assert (await send(rig, msg(nobody.id, await people.clinic()))).status == "no_channel"


async def test_provider_5xx_is_retried_and_then_sends_once(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    m = msg(p.id, await people.clinic())
    rig.fake.fail_next("twilio", 503, {"message": "Service Unavailable"})
    before = len(rig.fake.sent("twilio"))
    with pytest.raises(ApplicationError) as e:
        await send(rig, m)
    assert not e.value.non_retryable and e.value.type == "ProviderUnavailable"
    assert (await row(rig, m.idempotency_key)).status == "pending"
    r = await send(rig, m)  # Temporal's retry
    assert r.status == "sent" and not r.duplicate
    assert len(rig.fake.sent("twilio")) == before + 2  # one refused, one accepted


async def test_crash_after_row_written_before_provider_call_sends_once(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    m = msg(p.id, await people.clinic())
    async with rig.deps.sessions() as s:  # what the dead attempt left behind
        s.add(
            MessageLog(
                idempotency_key=m.idempotency_key,
                direction="out",
                channel=Channel.sms,
                kind="reminder",
                status="pending",
                patient_id=p.id,
                body=m.text,
            )
        )
        await s.commit()
    before = len(rig.fake.sent("twilio"))
    r = await send(rig, m)
    assert r.status == "sent" and len(rig.fake.sent("twilio")) == before + 1


async def test_killed_during_the_provider_call_never_duplicates(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.whatsapp)
    m = msg(p.id, await people.clinic())
    before = len(rig.fake.sent("whatsapp"))
    rig.fake.delay["whatsapp"] = 5.0  # the provider got it, the answer is slow
    try:
        attempt = asyncio.create_task(send(rig, m))

        async def reached() -> None:
            assert len(rig.fake.sent("whatsapp")) == before + 1

        await eventually(reached, timeout=10, interval=0.02)
        attempt.cancel()  # the worker dies mid-call
        with pytest.raises((asyncio.CancelledError, ApplicationError)):
            await attempt
    finally:
        rig.fake.delay.pop("whatsapp")
    assert (await row(rig, m.idempotency_key)).status == "sending"
    r = await send(rig, m)  # the retry, on another worker
    assert r.status == "sent" and r.duplicate
    assert (await row(rig, m.idempotency_key)).status == "unconfirmed"
    await asyncio.sleep(0.2)
    assert len(rig.fake.sent("whatsapp")) == before + 1  # exactly one message


async def test_voice_call_request_shape(rig: Rig, people: People) -> None:
    p = await people.patient(Channel.sms)
    call = VoiceCall(
        idempotency_key=f"call-{uuid.uuid4().hex}",
        patient_id=p.id,
        clinic_id=await people.clinic(),
        prompt="Натисніть 1 або 2",
        subject_id="appt-x",
    )
    r = await ActivityEnvironment().run(rig.messaging.place_voice_call, call)
    assert r.status == "sent" and r.channel == "voice" and r.provider_message_id.startswith("CA")
    req = rig.fake.sent("twilio", "Calls")[-1]
    assert req.path == f"/twilio/2010-04-01/Accounts/{TW_SID}/Calls.json"
    logged = await row(rig, call.idempotency_key)
    base = rig.settings.public_base_url
    assert req.form["To"] == p.phone and req.form["From"] == TW_FROM
    assert req.form["Url"] == f"{base}/v1/webhooks/twilio/voice/twiml?m={logged.id}"
    assert req.form["StatusCallback"] == f"{base}/v1/webhooks/twilio/voice/status?m={logged.id}"
    twiml = await rig.fake.twilio_fetch_twiml(r.provider_message_id)
    assert '<Gather numDigits="1"' in twiml and "Натисніть 1 або 2" in twiml
    again = await ActivityEnvironment().run(rig.messaging.place_voice_call, call)
    assert again.duplicate and len([c for c in rig.fake.sent("twilio", "Calls") if c.form["To"] == p.phone]) == 1


async def test_rendered_message_uses_the_clinics_whatsapp_template_and_language(rig: Rig, people: People) -> None:
    """Issue 9: "send kind K about subject S" is rendered here in the patient's language,
    buttons too, and outside the window goes out in the clinic's own approved template."""
    from contracts.common import MessageFacts
    from models.core import Clinic, Doctor

    clinic = await people._add(
        Clinic(
            name="Усмішка",
            address="вул. Хорива, 1, Київ",
            phone="+380441234567",
            timezone="Europe/Kyiv",
            policy={},
            language="uk",
            whatsapp_template="visit_reminder_v2",
            whatsapp_template_language="uk",
        )
    )
    doctor = await people._add(Doctor(clinic_id=clinic.id, full_name="Коваль Ірина", specialty="therapy"))
    p = await people.patient(Channel.whatsapp)
    aid = uuid.uuid4().hex
    m = OutboundMessage(
        idempotency_key=f"test-{uuid.uuid4().hex}",
        patient_id=p.id,
        clinic_id=clinic.id,
        kind="reminder",
        subject_id=aid,
        buttons=[Button(button_id("confirm", aid), ""), Button(button_id("decline", aid), "")],
        render=True,
        facts=MessageFacts(
            appointment_id=aid,
            doctor_id=doctor.id,
            starts_at=datetime(2027, 3, 5, 8, 30, tzinfo=UTC),
            service="Пломбування",
        ),
    )
    r = await send(rig, m)
    assert r.status == "sent" and r.channel == "whatsapp"
    body = rig.fake.sent("whatsapp")[-1].json
    assert body["template"]["name"] == "visit_reminder_v2" and body["template"]["language"] == {"code": "uk"}
    text = body["template"]["components"][0]["parameters"][0]["text"]
    assert text.startswith("Добрий день, Olena! Нагадуємо про візит до Усмішка: 5 березня 2027 о 10:30")
    assert "лікар Коваль Ірина" in text and "/p/" in text and aid not in text

    w = await rig.fake.patient_sends_whatsapp(p.phone, "Добрий день")
    assert w.status_code == 200, w.text
    await send(rig, dataclasses.replace(m, idempotency_key=f"test-{uuid.uuid4().hex}"))
    inter = rig.fake.sent("whatsapp")[-1].json["interactive"]
    assert [b["reply"]["title"] for b in inter["action"]["buttons"]] == ["Підтверджую", "Не зможу прийти"]


async def test_an_ask_commits_its_outcome_and_question_together(rig: Rig, people: People) -> None:
    """Issue 14: every ask's send writes its ledger row already `sending` (durable before the
    provider call; was `pending`, then a second commit for `sending`), then records `sent` and
    the open question it asks in ONE transaction (was three: sent, the question, the row's
    question_id), without first looking the question up. Rendering reads the clinic's texts
    (the ask and its two buttons' titles) in one statement and the patient once (was three
    statements and the patient twice). Fewer
    SQLite write locks and fsyncs per ask; the question is never missing from a sent ask."""
    from sqlalchemy import event

    from contracts.common import ANSWER_YES_NO, Question
    from models.conversation import OpenQuestion

    p = await people.patient(Channel.sms)
    aid = uuid.uuid4().hex
    m = dataclasses.replace(
        msg(p.id, await people.clinic()),
        buttons=[Button(button_id("confirm", aid), ""), Button(button_id("decline", aid), "")],
        render=True,
        facts=MessageFacts(appointment_id=aid, starts_at=datetime(2027, 3, 5, 8, 30, tzinfo=UTC), service="Огляд"),
    )
    m.workflow_id = f"wf-{uuid.uuid4().hex}"
    m.question = Question(kind="confirmation", subject_type="appointment", subject_id=aid, answers=[ANSWER_YES_NO])
    commits: list[int] = []
    statements: list[str] = []

    def count(_conn) -> None:  # type: ignore[no-untyped-def]
        commits.append(1)

    def seen(_conn, _cur, statement, *_) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    event.listen(rig.deps.engine.sync_engine, "commit", count)
    event.listen(rig.deps.engine.sync_engine, "before_cursor_execute", seen)
    try:
        r = await send(rig, m)
    finally:
        event.remove(rig.deps.engine.sync_engine, "commit", count)
        event.remove(rig.deps.engine.sync_engine, "before_cursor_execute", seen)
    assert r.status == "sent"
    assert len(commits) == 2, len(commits)
    assert len([q for q in statements if "FROM message_template" in q]) == 1, statements
    assert len([q for q in statements if q.startswith("SELECT") and "FROM patient WHERE" in q]) == 1, statements
    # The row is this attempt's own: no earlier attempt can have recorded its question.
    assert not [q for q in statements if q.startswith("SELECT") and "FROM open_question" in q], statements
    form = rig.fake.sent("twilio")[-1].form
    assert form is not None and form["Body"] == (await row(rig, m.idempotency_key)).body
    sent_row = await row(rig, m.idempotency_key)
    async with rig.deps.sessions() as s:
        q = (await s.exec(select(OpenQuestion).where(OpenQuestion.message_key == m.idempotency_key))).one()
    assert sent_row.status == "sent" and sent_row.question_id == q.id and q.state == "open"
    # The same send again: a duplicate, nothing new written, the same question.
    again = await send(rig, m)
    assert again.duplicate and (await row(rig, m.idempotency_key)).question_id == q.id


async def test_two_attempts_of_one_send_at_once_send_it_once(rig: Rig, people: People) -> None:
    """Issue 16 (chaos run): a worker starved of CPU misses its heartbeats, Temporal starts a
    second attempt while the first still runs, and both found the row `pending`: the patient
    got the message twice. Only the attempt that moves the row pending -> sending sends."""
    p = await people.patient(Channel.sms)
    clinic = await people.clinic()
    for _ in range(3):
        m = msg(p.id, clinic)
        before = len(rig.fake.sent("twilio"))
        rig.fake.delay["twilio"] = 0.5
        try:
            results = await asyncio.gather(send(rig, m), send(rig, m))
        finally:
            rig.fake.delay.pop("twilio")
        await asyncio.sleep(0.2)
        assert len(rig.fake.sent("twilio")) == before + 1, results
        assert all(r.status == "sent" for r in results), results
