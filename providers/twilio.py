"""Twilio Programmable Messaging (SMS) and Voice, plus the request signature both ways.

Twilio's REST API has no idempotency key: a request whose answer was lost may or may not
have been accepted. The messaging activity therefore sends SMS and calls at most once
(see activities/messaging.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

import httpx

from core.settings import Settings
from providers import ProviderRejected, Sent, post
from providers.pacing import Pace


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted(name + value)))."""
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioClient:
    channel = "sms"

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.s = settings
        self.http = http

    @property
    def configured(self) -> bool:
        return bool(self.s.twilio_account_sid and self.s.twilio_auth_token and self.s.twilio_from_number)

    def _url(self, resource: str) -> str:
        return f"{self.s.twilio_api_url.rstrip('/')}/2010-04-01/Accounts/{self.s.twilio_account_sid}/{resource}.json"

    def callback_url(self, path: str, **query: str) -> str:
        q = f"?{urlencode(query)}" if query else ""
        return f"{self.s.public_base_url.rstrip('/')}{path}{q}"

    def pace(self, resource: str = "Messages") -> Pace:
        """This sender's pacing: per account, messages and calls apart."""
        rate = self.s.twilio_call_rate if resource == "Calls" else self.s.twilio_send_rate
        return Pace(f"twilio:{self.s.twilio_account_sid}:{resource}", rate)

    async def _create(self, channel: str, resource: str, form: dict[str, str]) -> Sent:
        data = await post(
            channel,
            self.http,
            self._url(resource),
            data=form,
            auth=(self.s.twilio_account_sid, self.s.twilio_auth_token),
            pace=self.pace(resource),
        )
        sid = data.get("sid")
        if not sid:
            raise ProviderRejected(channel, "answer carries no sid")
        return Sent(str(sid), {"status": data.get("status")})

    async def send_sms(self, to: str, body: str) -> Sent:
        return await self._create(
            "sms",
            "Messages",
            {
                "To": to,
                "From": self.s.twilio_from_number,
                "Body": body,
                "StatusCallback": self.callback_url("/v1/webhooks/twilio/sms/status"),
            },
        )

    async def place_call(self, to: str, log_id: str) -> Sent:
        """The call fetches TwiML from us (it reads the prompt by our log row id)."""
        return await self._create(
            "voice",
            "Calls",
            {
                "To": to,
                "From": self.s.twilio_from_number,
                "Url": self.callback_url("/v1/webhooks/twilio/voice/twiml", m=log_id),
                "Method": "POST",
                "StatusCallback": self.callback_url("/v1/webhooks/twilio/voice/status", m=log_id),
                "StatusCallbackMethod": "POST",
            },
        )
