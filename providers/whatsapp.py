"""Meta WhatsApp Cloud API: `POST {WHATSAPP_API_URL}/{phone_number_id}/messages`.

Free-form (`text`, `interactive`) only inside the 24-hour customer-service window opened by
the patient's last message; outside it an approved `template` is required.
"""

from __future__ import annotations

from typing import Any

import httpx

from contracts.common import Button
from core.settings import Settings
from providers import ProviderRejected, Sent, post
from providers.pacing import Pace

MAX_BUTTONS = 3
MAX_TITLE = 20
MAX_ID = 256
# The template a clinic registers for automated notices outside the 24-hour window; its body
# has one variable ({{1}}) that carries our text, plus up to 3 quick-reply buttons. Each
# clinic names its own (clinic.whatsapp_template, .whatsapp_template_language); these are
# the fallbacks for a message sent without one.
DEFAULT_TEMPLATE = "appointment_notice"
TEMPLATE_LANGUAGE = "uk"


def wa_number(phone: str) -> str:
    """WhatsApp ids are E.164 digits without the plus."""
    return phone.lstrip("+")


class WhatsAppClient:
    channel = "whatsapp"

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.s = settings
        self.http = http

    @property
    def configured(self) -> bool:
        return bool(self.s.whatsapp_access_token and self.s.whatsapp_phone_number_id)

    def payload(
        self,
        to: str,
        text: str,
        buttons: list[Button],
        template: str | None,
        in_window: bool,
        template_language: str | None = None,
    ) -> dict[str, Any]:
        base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": wa_number(to)}
        usable = [b for b in buttons if len(b.id) <= MAX_ID][:MAX_BUTTONS]
        if not in_window:
            components: list[dict[str, Any]] = [{"type": "body", "parameters": [{"type": "text", "text": text}]}]
            for i, b in enumerate(usable if len(buttons) <= MAX_BUTTONS else []):
                components.append(
                    {
                        "type": "button",
                        "sub_type": "quick_reply",
                        "index": str(i),
                        "parameters": [{"type": "payload", "payload": b.id}],
                    }
                )
            return {
                **base,
                "type": "template",
                "template": {
                    "name": template or DEFAULT_TEMPLATE,
                    "language": {"code": template_language or TEMPLATE_LANGUAGE},
                    "components": components,
                },
            }
        if buttons and len(buttons) <= MAX_BUTTONS:
            return {
                **base,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": text},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": b.id, "title": b.title[:MAX_TITLE]}} for b in usable
                        ]
                    },
                },
            }
        # More than 3 choices (e.g. NPS 0-10) do not fit reply buttons: plain text, the
        # patient answers in words or digits.
        return {**base, "type": "text", "text": {"preview_url": False, "body": text}}

    def pace(self) -> Pace:
        """This sender's pacing: per business phone number."""
        return Pace(f"whatsapp:{self.s.whatsapp_phone_number_id}", self.s.whatsapp_send_rate)

    async def send(
        self,
        to: str,
        text: str,
        buttons: list[Button] | None = None,
        template: str | None = None,
        in_window: bool = True,
        template_language: str | None = None,
    ) -> Sent:
        body = self.payload(to, text, buttons or [], template, in_window, template_language)
        data = await post(
            self.channel,
            self.http,
            f"{self.s.whatsapp_api_url.rstrip('/')}/{self.s.whatsapp_phone_number_id}/messages",
            json=body,
            headers={"Authorization": f"Bearer {self.s.whatsapp_access_token}"},
            pace=self.pace(),
        )
        try:
            wamid = data["messages"][0]["id"]
        except (KeyError, IndexError, TypeError):
            raise ProviderRejected(self.channel, "answer carries no message id") from None
        return Sent(wamid, {"type": body["type"]})
