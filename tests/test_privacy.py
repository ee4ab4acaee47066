"""Patient data stays private: encrypted in Temporal history (inputs, results, failures),
readable by ops through the codec endpoint, and never in log lines."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import os
import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from core.codec import EncryptionCodec, data_converter
from core.logging import configure_logging, get_logger
from core.settings import Settings
from models.core import Role
from tests.support.api import Api

NAME = "Olena Petrenko-Zakharchuk"
PHONE = "+380671234567"


@dataclasses.dataclass
class Greeting:
    full_name: str
    phone: str


@activity.defn(name="privacy_probe_activity")
async def probe(g: Greeting) -> str:
    if g.full_name.startswith("FAIL"):
        raise ApplicationError(f"cannot reach {g.full_name} at {g.phone}", non_retryable=True)
    return f"Hello {g.full_name}, we will call {g.phone}"


@workflow.defn(name="PrivacyProbe", sandboxed=False)
class PrivacyProbe:
    @workflow.run
    async def run(self, g: Greeting) -> str:
        return await workflow.execute_activity(
            probe, g, start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=1)
        )


async def _raw_history_bytes(settings: Settings, workflow_id: str) -> bytes:
    """Fetch the history with a client that has NO codec: what Temporal actually stores."""
    plain = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    return json.dumps(history.to_json_dict()).encode() + history.to_json().encode()


async def test_history_holds_no_patient_data_in_clear(client: Client, settings: Settings) -> None:
    tq = f"privacy-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=tq, workflows=[PrivacyProbe], activities=[probe]):
        ok_id = f"privacy-ok-{uuid.uuid4().hex[:8]}"
        result = await client.execute_workflow(PrivacyProbe.run, Greeting(NAME, PHONE), id=ok_id, task_queue=tq)
        assert NAME in result  # our own client decrypts
        fail_id = f"privacy-fail-{uuid.uuid4().hex[:8]}"
        with pytest.raises(WorkflowFailureError) as err:
            await client.execute_workflow(PrivacyProbe.run, Greeting("FAIL " + NAME, PHONE), id=fail_id, task_queue=tq)
        # Failure messages are encoded too, but our client still reads them.
        assert NAME in str(err.value.cause.cause)

    for wid in (ok_id, fail_id):
        raw = await _raw_history_bytes(settings, wid)
        for secret in (NAME, PHONE, "Olena", "671234567"):
            assert secret.encode() not in raw, f"{secret!r} in clear in {wid}"
            assert base64.b64encode(json.dumps(secret).encode()) not in raw
        assert b"binary/encrypted" in raw or base64.b64encode(b"binary/encrypted") in raw


async def test_codec_rotates_keys() -> None:
    old = ("k-old", os.urandom(32))
    new = ("k-new", os.urandom(32))
    conv_old = data_converter([old])
    conv_new = data_converter([new, old])
    [payload] = await conv_old.encode([Greeting(NAME, PHONE)])
    assert payload.metadata["encryption-key-id"] == b"k-old"
    assert (await conv_new.decode([payload], [Greeting]))[0] == Greeting(NAME, PHONE)
    [p2] = await conv_new.encode(["x"])
    assert p2.metadata["encryption-key-id"] == b"k-new"
    with pytest.raises(ValueError):
        await data_converter([("other", os.urandom(32))]).decode([payload], [Greeting])
    with pytest.raises(ValueError):
        EncryptionCodec([])


async def _encoded_body(settings: Settings) -> dict:
    [p] = await data_converter(settings.encryption_keys()).encode([{"full_name": NAME}])
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
        ]
    }


async def test_ui_codec_login_sets_a_cookie_only_ops_can_use(api: Api, settings: Settings, users: dict) -> None:
    """The Temporal UI can send no secret of ours: ops sign in in the browser, and the UI's
    "include cross-origin credentials" sends the cookie with each codec call."""
    body = await _encoded_body(settings)
    base = str(api.http.base_url)
    pw = "pw-{role}-12345"
    async with httpx.AsyncClient(base_url=base) as browser:
        assert (await browser.get("/codec/login")).status_code == 200
        r = await browser.post(
            "/codec/login", data={"username": users[Role.front_desk], "password": pw.format(role="front_desk")}
        )
        assert r.status_code == 403 and "journeys_codec" not in r.headers.get("set-cookie", "")
        assert (await browser.post("/codec/decode", json=body)).status_code == 401
        r = await browser.post("/codec/login", data={"username": users[Role.ops], "password": pw.format(role="ops")})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert "journeys_codec=" in cookie and "HttpOnly" in cookie and "Path=/codec" in cookie
        assert "samesite=strict" in cookie.lower()
        r = await browser.post("/codec/decode", json=body, headers={"Origin": "http://127.0.0.1:8233"})
        assert r.status_code == 200 and NAME.encode() in base64.b64decode(r.json()["payloads"][0]["data"])
        assert r.headers["access-control-allow-credentials"] == "true"
        assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
        # The cookie is for the codec only: it is no API login.
        assert (await browser.get("/v1/auth/me")).status_code == 401
        assert (await browser.post("/codec/logout")).status_code == 200
        assert (await browser.post("/codec/decode", json=body)).status_code == 401
    async with httpx.AsyncClient(base_url=base, cookies={"journeys_codec": "forged"}) as browser:
        assert (await browser.post("/codec/decode", json=body)).status_code == 401


async def test_codec_endpoint_for_ops_only(api: Api, settings: Settings) -> None:
    body = await _encoded_body(settings)
    r = await api.as_(Role.ops).post("/codec/decode", json=body)
    assert r.status_code == 200, r.text
    decoded = base64.b64decode(r.json()["payloads"][0]["data"])
    assert NAME.encode() in decoded
    assert (await api.as_(Role.front_desk).post("/codec/decode", json=body)).status_code == 403
    assert (await api.http.post("/codec/decode", json=body)).status_code == 401
    # The CLI's --codec-header "X-Codec-Secret=…"; never a secret in a URL (the UI publishes its endpoint).
    r = await api.http.post("/codec/decode", json=body, headers={"X-Codec-Secret": settings.codec_secret})
    assert r.status_code == 200
    assert (await api.http.post("/codec/decode", json=body, headers={"X-Codec-Secret": "wrong"})).status_code == 401
    assert (await api.http.post(f"/codec/k/{settings.codec_secret}/decode", json=body)).status_code == 404
    # CORS for the UI origin
    r = await api.http.options(
        "/codec/decode",
        headers={
            "Origin": "http://127.0.0.1:8233",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert r.headers.get("access-control-allow-origin") == "http://127.0.0.1:8233"
    # encode -> decode round trip through the endpoint
    plain = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(json.dumps(PHONE).encode()).decode(),
            }
        ]
    }
    enc = (await api.as_(Role.admin).post("/codec/encode", json=plain)).json()
    assert PHONE.encode() not in base64.b64decode(enc["payloads"][0]["data"])
    dec = (await api.as_(Role.admin).post("/codec/decode", json=enc)).json()
    assert dec == plain
    assert (await api.as_(Role.ops).post("/codec/decode", content=b"{nope")).status_code == 400


def test_logs_never_carry_names_or_phones() -> None:
    buf = io.StringIO()
    configure_logging("INFO", json_output=True)
    handler = logging.getLogger().handlers[0]
    handler.stream = buf  # type: ignore[attr-defined]
    log = get_logger("test")
    log.info(
        "patient booked",
        full_name=NAME,
        phone=PHONE,
        patient_id="p1",
        details={"to": PHONE, "note": f"call {NAME} on +380 67 123 45 67"},
    )
    log.info(f"free text mentions {PHONE} and olena@example.com")
    logging.getLogger("uvicorn.error").info("stdlib line with phone %s", PHONE)
    log.info("address is fine", url="http://127.0.0.1:8000", at="2026-11-23 10:00:00")
    out = buf.getvalue()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 4
    for needle in (NAME, PHONE, "671234567", "67 123 45 67", "olena@example.com"):
        assert needle not in out
    assert lines[0]["patient_id"] == "p1" and lines[0]["full_name"] == "[redacted]"
    assert "127.0.0.1:8000" in out and "2026-11-23 10:00:00" in out
    assert all("timestamp" in line and "level" in line for line in lines)


async def test_activity_log_lines_carry_workflow_and_activity_ids() -> None:
    from temporalio.testing import ActivityEnvironment

    buf = io.StringIO()
    configure_logging("INFO", json_output=True)
    logging.getLogger().handlers[0].stream = buf  # type: ignore[attr-defined]

    @activity.defn(name="log_probe")
    async def log_probe() -> None:
        get_logger("activities.test").info("reminder sent", channel="sms", to=PHONE)

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="appointment-abc123", activity_id="7")
    await env.run(log_probe)
    [line] = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert line["workflow_id"] == "appointment-abc123" and line["activity_id"] == "7"
    assert line["activity_type"] and line["to"] == "[redacted]"


async def test_request_log_shows_route_templates_not_secrets(api: Api, settings: Settings) -> None:
    buf = io.StringIO()
    configure_logging("INFO", json_output=True)
    logging.getLogger().handlers[0].stream = buf  # type: ignore[attr-defined]
    body = await _encoded_body(settings)
    r = await api.http.post("/codec/decode", json=body, headers={"X-Codec-Secret": settings.codec_secret})
    assert r.status_code == 200
    await api.as_(Role.front_desk).get("/v1/patients", params={"q": PHONE})
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    requests = [x for x in lines if x.get("event") == "request" and x.get("logger") == "api"]
    assert {x["path"] for x in requests} >= {"/codec/decode", "/v1/patients"}
    assert all(x.get("request_id") for x in requests)
    assert settings.codec_secret not in buf.getvalue() and PHONE not in buf.getvalue()
