"""Fake WhatsApp Cloud API, Telegram Bot API and Twilio on a real loopback HTTP server.

The fake records every request our provider clients make (`fake.requests`), answers like the
real APIs (wamid ids, Telegram message_id, Twilio SIDs), can fail or stall on demand, and
plays the patient: it calls OUR webhooks back, correctly signed (or badly, on request).

`provider_rig(...)` runs the fake plus a second API app whose Settings carry credentials and
base URLs pointing at the fake (the session API stays in sandbox mode), and a worker with
`ReplyProbe` - a stand-in appointment journey that records `patient_reply` signals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.worker import Worker

from activities.messaging import MessagingActivities
from core.deps import Deps
from core.settings import Settings
from providers.twilio import twilio_signature
from tests.support.live import free_port, serve
from tests.support.reply_probe import ReplyProbe

WA_SECRET = "wa-app-secret-test"
WA_TOKEN = "wa-access-token-test"
WA_PHONE_ID = "1098765432"
WA_VERIFY = "wa-verify-test"
TG_TOKEN = "123456:ABC-test-token"
TG_SECRET = "tg-webhook-secret-test"
TW_SID = "AC" + "0" * 32
TW_TOKEN = "twilio-auth-token-test"
TW_FROM = "+15005550006"


@dataclass
class Rec:
    provider: str  # whatsapp, telegram, twilio
    method: str  # messages, sendMessage, answerCallbackQuery, Messages, Calls
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    at: float = field(default_factory=time.monotonic)
    ok: bool = True  # False: answered with a failure (the provider did not deliver it)


class FakeProviders:
    def __init__(self) -> None:
        self.requests: list[Rec] = []
        self.failures: dict[str, list[tuple[int, Any]]] = {}
        self.fail_headers: dict[str, dict[str, str]] = {}
        # provider -> sends allowed per rolling second; past it the fake answers 429 (as the
        # Cloud API and Twilio do past their throughput) and counts it in `throttled`.
        self.rate_limit: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.down: set[str] = set()  # providers answering every request 503 (an outage)
        self.calls: dict[str, dict[str, str]] = {}
        self.url = ""
        self.webhook_base = ""  # our API, set by the rig
        self.http = httpx.AsyncClient(timeout=30)
        self._tg_message_id = 1000
        self._update_id = int(time.time() * 1000) % 10**9
        self.app = self._build()

    # ------------------------------------------------------------------ control
    def fail_next(self, provider: str, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.failures.setdefault(provider, []).append((status, body or {"error": "fake"}))
        if headers:
            self.fail_headers[provider] = headers

    def sent(self, provider: str, method: str | None = None) -> list[Rec]:
        return [r for r in self.requests if r.provider == provider and (method is None or r.method == method)]

    def settings_update(self) -> dict[str, Any]:
        return {
            "whatsapp_api_url": f"{self.url}/wa/v21.0",
            "whatsapp_phone_number_id": WA_PHONE_ID,
            "whatsapp_access_token": WA_TOKEN,
            "whatsapp_app_secret": WA_SECRET,
            "whatsapp_verify_token": WA_VERIFY,
            "telegram_api_url": f"{self.url}/tg",
            "telegram_bot_token": TG_TOKEN,
            "telegram_webhook_secret": TG_SECRET,
            "twilio_api_url": f"{self.url}/twilio",
            "twilio_account_sid": TW_SID,
            "twilio_auth_token": TW_TOKEN,
            "twilio_from_number": TW_FROM,
        }

    def delivered(self, provider: str, method: str | None = None) -> list[Rec]:
        """What the provider accepted (not the requests it failed)."""
        return [r for r in self.sent(provider, method) if r.ok]

    async def _gate(self, provider: str, rec: Rec | None = None) -> JSONResponse | None:
        if d := self.delay.get(provider):
            await asyncio.sleep(d)
        if provider in self.down:
            if rec is not None:
                rec.ok = False
            return JSONResponse({"error": "service unavailable (fake outage)"}, status_code=503)
        queue = self.failures.get(provider)
        if queue:
            status, body = queue.pop(0)
            if rec is not None:
                rec.ok = False
            return JSONResponse(body, status_code=status, headers=self.fail_headers.pop(provider, None))
        if (limit := self.rate_limit.get(provider)) is not None:
            now = time.monotonic()
            if sum(1 for r in self.requests if r.provider == provider and now - r.at < 1.0) > limit:
                self.throttled[provider] = self.throttled.get(provider, 0) + 1
                if rec is not None:
                    rec.ok = False
                return JSONResponse({"error": {"code": 130429, "message": "Rate limit hit"}}, 429)
        return None

    # ------------------------------------------------------------------ the provider APIs
    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/wa/v21.0/{phone_id}/messages")
        async def wa_messages(phone_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {WA_TOKEN}" or phone_id != WA_PHONE_ID:
                return JSONResponse(
                    {"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}}, 401
                )
            body = await request.json()
            rec = Rec("whatsapp", "messages", request.url.path, dict(request.headers), json=body)
            self.requests.append(rec)
            if resp := await self._gate("whatsapp", rec):
                return resp
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": "wamid.HBgM" + uuid.uuid4().hex.upper()}],
                }
            )

        @app.post("/tg/{bot}/{method}")
        async def tg(bot: str, method: str, request: Request) -> JSONResponse:
            if bot != f"bot{TG_TOKEN}":
                return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
            body = await request.json()
            rec = Rec("telegram", method, request.url.path, dict(request.headers), json=body)
            self.requests.append(rec)
            if resp := await self._gate("telegram", rec):
                return resp
            if method == "answerCallbackQuery":
                return JSONResponse({"ok": True, "result": True})
            self._tg_message_id += 1
            return JSONResponse(
                {
                    "ok": True,
                    "result": {
                        "message_id": self._tg_message_id,
                        "date": int(time.time()),
                        "chat": {"id": int(body["chat_id"]), "type": "private"},
                        "text": body["text"],
                    },
                }
            )

        @app.post("/twilio/2010-04-01/Accounts/{sid}/{resource}")
        async def twilio(sid: str, resource: str, request: Request) -> JSONResponse:
            expected = "Basic " + base64.b64encode(f"{TW_SID}:{TW_TOKEN}".encode()).decode()
            if request.headers.get("authorization") != expected or sid != TW_SID:
                return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, 401)
            form = {k: str(v) for k, v in (await request.form()).items()}
            kind = resource.removesuffix(".json")
            rec = Rec("twilio", kind, request.url.path, dict(request.headers), form=form)
            self.requests.append(rec)
            if resp := await self._gate("twilio", rec):
                return resp
            prefix = "CA" if kind == "Calls" else "SM"
            new_sid = prefix + uuid.uuid4().hex
            if kind == "Calls":
                self.calls[new_sid] = form
            return JSONResponse(
                {
                    "sid": new_sid,
                    "account_sid": TW_SID,
                    "status": "queued",
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                },
                201,
            )

        return app

    # ------------------------------------------------------------------ patients, via webhooks
    def next_update_id(self) -> int:
        self._update_id += 1
        return self._update_id

    async def whatsapp_notify(self, payload: dict[str, Any], sig: str = "ok") -> httpx.Response:
        raw = json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if sig != "none":
            secret = WA_SECRET if sig == "ok" else "not-the-secret"
            headers["x-hub-signature-256"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return await self.http.post(f"{self.webhook_base}/v1/webhooks/whatsapp", content=raw, headers=headers)

    @staticmethod
    def _wa_envelope(value: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550001234", "phone_number_id": WA_PHONE_ID},
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    async def patient_sends_whatsapp(
        self, from_phone: str, text: str, wamid: str | None = None, sig: str = "ok"
    ) -> httpx.Response:
        wa = from_phone.lstrip("+")
        return await self.whatsapp_notify(
            self._wa_envelope(
                {
                    "contacts": [{"profile": {"name": "Patient"}, "wa_id": wa}],
                    "messages": [
                        {
                            "from": wa,
                            "id": wamid or f"wamid.IN{uuid.uuid4().hex.upper()}",
                            "timestamp": str(int(time.time())),
                            "type": "text",
                            "text": {"body": text},
                        }
                    ],
                }
            ),
            sig,
        )

    async def patient_presses_whatsapp_button(
        self, from_phone: str, button_id: str, title: str = "OK", wamid: str | None = None, sig: str = "ok"
    ) -> httpx.Response:
        wa = from_phone.lstrip("+")
        return await self.whatsapp_notify(
            self._wa_envelope(
                {
                    "contacts": [{"profile": {"name": "Patient"}, "wa_id": wa}],
                    "messages": [
                        {
                            "from": wa,
                            "id": wamid or f"wamid.IN{uuid.uuid4().hex.upper()}",
                            "timestamp": str(int(time.time())),
                            "type": "interactive",
                            "context": {"from": "15550001234", "id": "wamid.OUT"},
                            "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
                        }
                    ],
                }
            ),
            sig,
        )

    async def whatsapp_status(self, wamid: str, status: str, to_phone: str) -> httpx.Response:
        return await self.whatsapp_notify(
            self._wa_envelope(
                {
                    "statuses": [
                        {
                            "id": wamid,
                            "status": status,
                            "timestamp": str(int(time.time())),
                            "recipient_id": to_phone.lstrip("+"),
                        }
                    ]
                }
            )
        )

    async def telegram_update(self, update: dict[str, Any], sig: str = "ok") -> httpx.Response:
        headers = {}
        if sig != "none":
            headers["x-telegram-bot-api-secret-token"] = TG_SECRET if sig == "ok" else "wrong"
        return await self.http.post(f"{self.webhook_base}/v1/webhooks/telegram", json=update, headers=headers)

    async def telegram_message(
        self, chat_id: str, text: str, update_id: int | None = None, sig: str = "ok"
    ) -> httpx.Response:
        user = {"id": int(chat_id), "is_bot": False, "first_name": "Patient"}
        return await self.telegram_update(
            {
                "update_id": update_id or self.next_update_id(),
                "message": {
                    "message_id": 1,
                    "from": user,
                    "chat": {"id": int(chat_id), "type": "private"},
                    "date": int(time.time()),
                    "text": text,
                },
            },
            sig,
        )

    async def telegram_callback(
        self, chat_id: str, data: str, update_id: int | None = None, sig: str = "ok"
    ) -> httpx.Response:
        user = {"id": int(chat_id), "is_bot": False, "first_name": "Patient"}
        return await self.telegram_update(
            {
                "update_id": update_id or self.next_update_id(),
                "callback_query": {
                    "id": str(uuid.uuid4().int)[:18],
                    "from": user,
                    "chat_instance": "42",
                    "data": data,
                    "message": {"message_id": 7, "date": 0, "chat": {"id": int(chat_id), "type": "private"}},
                },
            },
            sig,
        )

    async def twilio_post(self, url: str, params: dict[str, str], sig: str = "ok") -> httpx.Response:
        """POST form params to one of our Twilio webhooks, signed like Twilio does."""
        if not url.startswith("http"):
            url = self.webhook_base + url
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if sig != "none":
            token = TW_TOKEN if sig == "ok" else "not-the-token"
            headers["x-twilio-signature"] = twilio_signature(token, url, params)
        return await self.http.post(url, content=urlencode(params), headers=headers)

    async def twilio_sms(self, from_phone: str, body: str, sid: str | None = None, sig: str = "ok") -> httpx.Response:
        return await self.twilio_post(
            "/v1/webhooks/twilio/sms",
            {
                "MessageSid": sid or "SM" + uuid.uuid4().hex,
                "SmsSid": sid or "",
                "AccountSid": TW_SID,
                "From": from_phone,
                "To": TW_FROM,
                "Body": body,
                "NumMedia": "0",
            },
            sig,
        )

    def last_call(self) -> tuple[str, dict[str, str]]:
        sid = list(self.calls)[-1]
        return sid, self.calls[sid]

    async def twilio_fetch_twiml(self, call_sid: str) -> str:
        """What Twilio does when the patient picks up: POST to the call's Url."""
        form = self.calls[call_sid]
        r = await self.twilio_post(
            form["Url"],
            {
                "CallSid": call_sid,
                "AccountSid": TW_SID,
                "From": form["From"],
                "To": form["To"],
                "CallStatus": "in-progress",
                "Direction": "outbound-api",
            },
        )
        r.raise_for_status()
        return r.text

    async def twilio_call_digit(self, call_sid: str, digit: str, sig: str = "ok") -> httpx.Response:
        """The patient presses a key: Twilio posts Digits to the Gather action."""
        twiml = await self.twilio_fetch_twiml(call_sid)
        m = re.search(r'<Gather[^>]*action="([^"]+)"', twiml)
        assert m, twiml
        action = m.group(1).replace("&amp;", "&")
        form = self.calls[call_sid]
        return await self.twilio_post(
            action,
            {
                "CallSid": call_sid,
                "AccountSid": TW_SID,
                "From": form["From"],
                "To": form["To"],
                "Digits": digit,
                "CallStatus": "in-progress",
                "Direction": "outbound-api",
            },
            sig,
        )

    async def twilio_call_status(self, call_sid: str, status: str, sig: str = "ok") -> httpx.Response:
        form = self.calls[call_sid]
        return await self.twilio_post(
            form["StatusCallback"],
            {
                "CallSid": call_sid,
                "AccountSid": TW_SID,
                "From": form["From"],
                "To": form["To"],
                "CallStatus": status,
                "Direction": "outbound-api",
                "CallDuration": "12",
            },
            sig,
        )


@dataclass
class Rig:
    fake: FakeProviders
    settings: Settings  # with credentials pointing at the fake
    deps: Deps
    messaging: MessagingActivities
    api_url: str
    probe_queue: str
    client: Client
    app: Any = None  # the rig's API app (tests may take its Temporal client away)

    async def start_probe(self, appointment_id: str) -> Any:
        """A running workflow with the appointment journey's id, recording replies."""
        from contracts.appointment import appointment_workflow_id

        return await self.client.start_workflow(
            ReplyProbe.run, id=appointment_workflow_id(appointment_id), task_queue=self.probe_queue
        )


@contextlib.asynccontextmanager
async def provider_rig(
    settings: Settings, deps: Deps, client: Client, task_queue: str | None = None
) -> AsyncIterator[Rig]:
    """`task_queue`: the queue the rig's API starts journeys on (run a worker with
    `rig.deps` there for journeys that send through the fake providers)."""
    from api.main import create_app

    fake = FakeProviders()
    fake_port, app_port = free_port(), free_port()
    async with serve(fake.app, fake_port) as fake_url:
        fake.url = fake_url
        real = settings.model_copy(
            update={
                **fake.settings_update(),
                "public_base_url": f"http://127.0.0.1:{app_port}",
                "api_port": app_port,
                "temporal_task_queue": task_queue or settings.temporal_task_queue,
            }
        )
        assert not real.sandbox_providers
        real_deps = Deps(settings=real, engine=deps.engine, sessions=deps.sessions, http=deps.http)
        queue = f"probe-{uuid.uuid4().hex[:8]}"
        app = create_app(real)
        async with (
            serve(app, app_port) as api_url,
            Worker(client, task_queue=queue, workflows=[ReplyProbe]),
        ):
            fake.webhook_base = api_url
            assert urlsplit(api_url).port == app_port
            yield Rig(fake, real, real_deps, MessagingActivities(real_deps), api_url, queue, client, app)
    await fake.http.aclose()
