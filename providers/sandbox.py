"""The built-in sandbox provider: with no provider credentials, messages are only stored
(MessageLog rows, status `sent`, ids `sandbox-...`) and shown at GET /v1/sandbox/messages;
POST /v1/sandbox/reply answers as the patient through the real inbound routing."""

from __future__ import annotations

import uuid

from providers import Sent


class SandboxClient:
    async def send(self, channel: str) -> Sent:
        return Sent(f"sandbox-{channel}-{uuid.uuid4().hex[:16]}")
