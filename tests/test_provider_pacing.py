"""Provider rate limits (issue 14): sends are paced per sender and a 429 holds the sender back
for its Retry-After, so a burst drains at the provider's pace instead of a retry storm. The
fake WhatsApp Cloud API answers 429 past its throughput, as the real one does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from core.deps import Deps
from core.settings import Settings
from providers import ProviderUnavailable, pacing
from providers.pacing import PACER, Pace, Pacer
from providers.whatsapp import WhatsAppClient
from tests.support.fake_providers import Rig, provider_rig


@pytest.fixture(scope="module")
async def rig(settings: Settings, deps: Deps, client) -> AsyncIterator[Rig]:  # type: ignore[no-untyped-def]
    async with provider_rig(settings, deps, client) as r:
        yield r


async def _burst(rig: Rig, rate: float, n: int) -> list[object]:
    wa = WhatsAppClient(rig.settings.model_copy(update={"whatsapp_send_rate": rate}), rig.deps.http)
    return await asyncio.gather(
        *(wa.send(f"+38067{1000000 + i}", f"burst {i}") for i in range(n)), return_exceptions=True
    )


async def test_a_burst_is_paced_under_the_providers_limit(rig: Rig) -> None:
    rig.fake.rate_limit["whatsapp"] = 12  # per rolling second
    rig.fake.throttled.clear()
    try:
        paced = await _burst(rig, rate=6, n=30)
        assert not [r for r in paced if isinstance(r, Exception)], paced
        assert rig.fake.throttled.get("whatsapp", 0) == 0
        # The same burst unpaced is what the limit is there for: the provider throttles it.
        unpaced = await _burst(rig, rate=0, n=30)
        throttled = [r for r in unpaced if isinstance(r, ProviderUnavailable)]
        assert throttled and rig.fake.throttled["whatsapp"] == len(throttled)
        assert all(e.status == 429 and e.retry_after for e in throttled)
    finally:
        rig.fake.rate_limit.pop("whatsapp", None)
        PACER._held.clear()


async def test_429_holds_the_sender_for_its_retry_after(rig: Rig) -> None:
    rig.fake.fail_next("whatsapp", 429, {"error": {"code": 130429}}, headers={"Retry-After": "7"})
    wa = WhatsAppClient(rig.settings, rig.deps.http)
    try:
        with pytest.raises(ProviderUnavailable) as e:
            await wa.send("+380671234567", "hello")
        assert e.value.status == 429 and e.value.retry_after == 7
        key = f"whatsapp:{rig.settings.whatsapp_phone_number_id}"
        assert PACER._held[key] - pacing.time.monotonic() > 6  # every send of this sender waits
    finally:
        PACER._held.clear()


async def test_pacer_spaces_sends_and_waits_out_a_hold() -> None:
    """The pacer's arithmetic on a fake clock (no real time involved). The clock and sleep are
    the pacer's own: this test once swapped `time.monotonic` and `asyncio.sleep` for the whole
    process, and the session's API server, sharing the event loop, spun on the fake sleep until
    the suite's teardown timed out (a fresh-clone CI run)."""
    clock = [1000.0]
    slept: list[float] = []

    async def sleep(d: float) -> None:
        slept.append(round(d, 6))
        clock[0] += d

    real = (time.monotonic, asyncio.sleep)
    p, pace = Pacer(clock=lambda: clock[0], sleep=sleep), Pace("whatsapp:1", 2.0)
    for _ in range(3):
        await p.wait(pace)
    assert slept == [0.5, 0.5]  # 2 per second: the 2nd and 3rd wait half a second each
    slept.clear()
    p.hold("whatsapp:1", 7)
    await p.wait(pace)
    assert slept and sum(slept) >= 7
    await p.wait(Pace("sms:other", 2.0))  # another sender is not held
    assert sum(slept) < 8
    assert pacing.retry_after("3") == 3 and pacing.retry_after("Wed, 21 Oct 2026 07:28:00 GMT") == 1.0
    assert pacing.retry_after("99999") == pacing.MAX_HOLD and pacing.retry_after(None, 2.5) == 2.5
    assert (time.monotonic, asyncio.sleep) == real  # nothing outside the pacer saw the fake clock
