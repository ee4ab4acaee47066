"""Signed links to a patient's pages: `/p/<token>`.

The token is the appointment id (16 random bytes, not patient data) plus a purpose byte,
signed with HMAC-SHA256 under LINK_SECRET (truncated to 128 bits) and base64url-encoded:
~44 characters, unguessable, and nothing about the patient in the URL. Expiry is decided
when the link is opened, from the visit as it is then (a rescheduled visit keeps its links
working): `expires_at()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

from contracts.policy import JourneyPolicy

PURPOSES = {"visit": 1, "feedback": 2}
_BY_BYTE = {v: k for k, v in PURPOSES.items()}
_MAC_BYTES = 16
# After the visit a link keeps working through the survey window plus this margin.
GRACE = timedelta(days=7)


class BadLink(ValueError):
    """Tampered, truncated, or not ours."""


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), b"patient-link:" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: str, appointment_id: str, purpose: str = "visit") -> str:
    body = bytes([PURPOSES[purpose]]) + bytes.fromhex(appointment_id)
    return base64.urlsafe_b64encode(body + _mac(secret, body)).decode().rstrip("=")


def read_token(secret: str, token: str) -> tuple[str, str]:
    """(appointment_id, purpose), or BadLink."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as e:
        raise BadLink("not a link token") from e
    if len(raw) != 1 + 16 + _MAC_BYTES:
        raise BadLink("not a link token")
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, body)):
        raise BadLink("signature does not match")
    purpose = _BY_BYTE.get(body[0])
    if purpose is None:
        raise BadLink("unknown purpose")
    return body[1:].hex(), purpose


def expires_at(ends_at: datetime, policy: JourneyPolicy) -> datetime:
    """A link works until the visit's end + feedback delay + survey window + GRACE."""
    return ends_at + policy.feedback_delay_td + policy.survey_timeout_td + GRACE


def page_url(base_url: str, secret: str, appointment_id: str, purpose: str = "visit") -> str:
    token = make_token(secret, appointment_id, purpose)
    return f"{base_url.rstrip('/')}/p/{token}" + ("/feedback" if purpose == "feedback" else "")
