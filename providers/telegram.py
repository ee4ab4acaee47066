"""Telegram Bot API: `sendMessage` with an inline keyboard, `answerCallbackQuery`."""

from __future__ import annotations

from typing import Any

import httpx

from contracts.common import Button
from core.logging import get_logger
from core.settings import Settings
from providers import ProviderRejected, Sent, post
from providers.pacing import Pace

log = get_logger("providers.telegram")
MAX_CALLBACK_BYTES = 64


def keyboard(buttons: list[Button]) -> list[list[dict[str, str]]]:
    fit = [b for b in buttons if len(b.id.encode()) <= MAX_CALLBACK_BYTES]
    if len(fit) < len(buttons):
        log.warning("telegram buttons dropped: callback_data over 64 bytes", dropped=len(buttons) - len(fit))
    keys = [{"text": b.title, "callback_data": b.id} for b in fit]
    width = 3 if len(keys) <= 3 else 6  # NPS 0-10 -> two rows
    return [keys[i : i + width] for i in range(0, len(keys), width)]


class TelegramClient:
    channel = "telegram"

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.s = settings
        self.http = http

    @property
    def configured(self) -> bool:
        return bool(self.s.telegram_bot_token)

    def _url(self, method: str) -> str:
        return f"{self.s.telegram_api_url.rstrip('/')}/bot{self.s.telegram_bot_token}/{method}"

    def pace(self) -> Pace:
        """This sender's pacing: per bot."""
        return Pace(f"telegram:{self.s.telegram_bot_token.split(':', 1)[0]}", self.s.telegram_send_rate)

    async def send(self, chat_id: str, text: str, buttons: list[Button] | None = None) -> Sent:
        body: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if buttons:
            body["reply_markup"] = {"inline_keyboard": keyboard(buttons)}
        data = await post(self.channel, self.http, self._url("sendMessage"), json=body, pace=self.pace())
        if not data.get("ok"):
            raise ProviderRejected(self.channel, str(data.get("description", "not ok")))
        return Sent(str(data["result"]["message_id"]))

    async def answer_callback(self, callback_query_id: str, text: str | None = None) -> None:
        body: dict[str, Any] = {"callback_query_id": callback_query_id}
        if text:
            body["text"] = text
        await post(self.channel, self.http, self._url("answerCallbackQuery"), json=body)
