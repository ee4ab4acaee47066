"""Provider clients (WhatsApp Cloud API, Telegram Bot API, Twilio, the built-in sandbox).

Each client turns one outbound message into one HTTP request on the shared
`httpx.AsyncClient` and classifies failures so the messaging activity can decide:

* `ProviderRejected` - the provider said no for good (4xx other than 429): try the next
  channel, never retry this one.
* `ProviderUnavailable` - 5xx, 429, network trouble: retry later. `maybe_sent` tells whether
  the request may have reached the provider (response lost) - then a blind retry could
  duplicate the message; `retry_after` is the provider's own wait after a 429.

Sends are paced per sender (providers.pacing): `post(..., pace=Pace(key, rate))`. A send that
may not wait for its slot (`pacing.waiting_at_most`) raises `ProviderPaced`, a
`ProviderUnavailable` that certainly did not reach the provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from providers.pacing import PACER, Pace, WouldWait, retry_after


class ProviderError(Exception):
    def __init__(self, channel: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.status = status


class ProviderRejected(ProviderError):
    """4xx (not 429): the request is wrong for this recipient/channel; do not retry it."""


class ProviderUnavailable(ProviderError):
    """5xx / 429 / network: retry. `maybe_sent` = the provider may have accepted it."""

    def __init__(
        self,
        channel: str,
        message: str,
        status: int | None = None,
        maybe_sent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(channel, message, status)
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after


class ProviderPaced(ProviderUnavailable):
    """Not sent: the sender's next slot is further off than this send may wait
    (providers.pacing.waiting_at_most); `retry_after` is how far off it is."""


@dataclass
class Sent:
    provider_message_id: str
    raw: dict[str, Any] = field(default_factory=dict)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


async def post(
    channel: str, http: httpx.AsyncClient, url: str, *, pace: Pace | None = None, **kw: Any
) -> dict[str, Any]:
    """POST and classify the outcome; returns the JSON body of a 2xx answer. With `pace`, waits
    for the sender's next slot first, and a 429 holds the sender back for its Retry-After."""
    if pace is not None:
        try:
            await PACER.wait(pace)
        except WouldWait as e:
            raise ProviderPaced(channel, f"paced: {e}", retry_after=e.seconds) from None
    try:
        r = await http.post(url, **kw)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
        # The request never left: safe to retry as if nothing happened.
        raise ProviderUnavailable(channel, f"cannot reach provider ({type(e).__name__})") from e
    except httpx.TransportError as e:
        # Sent, but the answer was lost (read timeout, connection reset): outcome unknown.
        raise ProviderUnavailable(channel, f"no answer from provider ({type(e).__name__})", maybe_sent=True) from e
    if r.status_code == 429:
        wait = retry_after(r.headers.get("retry-after"))
        if pace is not None:
            PACER.hold(pace.key, wait)
        raise ProviderUnavailable(channel, f"HTTP 429: {_short(r.text)}", 429, retry_after=wait)
    if r.status_code >= 500:
        raise ProviderUnavailable(channel, f"HTTP {r.status_code}: {_short(r.text)}", r.status_code)
    if r.status_code >= 400:
        raise ProviderRejected(channel, f"HTTP {r.status_code}: {_short(r.text)}", r.status_code)
    try:
        body = r.json()
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {"result": body}
