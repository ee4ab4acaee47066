"""Outbound pacing per sender.

Every provider caps how fast one sender may send (WhatsApp Cloud API: per business phone
number; Twilio: messages and calls per second per account/number; Telegram: per bot) and
answers 429 past it. So sends are spaced at the configured rate per sender in this process,
and a 429 holds back every send of that sender here for its Retry-After (or a second) — the
burst drains at the provider's pace instead of being retried into a storm.

Rates are per worker process: with k worker processes, set each to the provider's limit / k.

A send that must not wait (the journey's first attempt, run inside its workflow task: see
workflows/appointment.py SENDS_LOCAL_FIRST) runs under `waiting_at_most(seconds)`: a slot
further off than that raises `WouldWait` at once, without taking the slot, and the send is
handed to a queued attempt that waits its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

MAX_HOLD = 300.0  # seconds: a longer Retry-After is the retry policy's business
# How long a send in this context may wait for its slot (None: as long as it takes).
_MAX_WAIT: contextvars.ContextVar[float | None] = contextvars.ContextVar("pacing_max_wait", default=None)


class WouldWait(Exception):
    """The sender's next free slot is further off than this send may wait (`seconds`)."""

    def __init__(self, key: str, seconds: float) -> None:
        super().__init__(f"{key}: next slot in {seconds:.2f} s")
        self.key = key
        self.seconds = seconds


def max_wait() -> float | None:
    """How long a send here may wait for its slot (None: as long as it takes)."""
    return _MAX_WAIT.get()


@contextlib.contextmanager
def waiting_at_most(seconds: float) -> Iterator[None]:
    """Sends in this block (this task and what it awaits) wait at most `seconds` for a slot."""
    token = _MAX_WAIT.set(max(0.0, seconds))
    try:
        yield
    finally:
        _MAX_WAIT.reset(token)


@dataclass(frozen=True)
class Pace:
    key: str  # the sender: "whatsapp:<phone number id>", "sms:<from number>", ...
    rate: float  # sends per second; 0 = not paced (a 429 still holds the sender back)


class Pacer:
    """`clock` and `sleep` are the process's monotonic clock and asyncio's sleep; a test gives
    its own (a fake clock), never by swapping `time.monotonic` or `asyncio.sleep` for the whole
    process: the event loop runs on that clock, and every other task on it would sleep on the
    fake too."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}  # the earliest free slot per sender
        self._held: dict[str, float] = {}  # a 429 holds the sender until then

    async def wait(self, pace: Pace) -> None:
        """Return when this send may go out. One event loop: no awaits between reads and writes.
        Under `waiting_at_most(s)`, raises WouldWait instead of waiting longer than s (the slot
        stays free for a send that waits)."""
        limit = _MAX_WAIT.get()
        while True:
            now = self._clock()
            held = self._held.get(pace.key, 0.0)
            slot = max(now, self._next.get(pace.key, 0.0))
            if limit is not None and max(held, slot) - now > limit:
                raise WouldWait(pace.key, max(held, slot) - now)
            if held > now:
                await self._sleep(held - now)
                continue
            if pace.rate > 0:
                self._next[pace.key] = slot + 1.0 / pace.rate
            if slot > now:
                await self._sleep(slot - now)
            if self._held.get(pace.key, 0.0) <= self._clock():
                return
            # A 429 arrived while this send waited for its slot: wait that out, take a new slot.

    def wait_for(self, pace: Pace) -> float:
        """Seconds until this sender's next free slot (0: now); reserves nothing."""
        now = self._clock()
        return max(0.0, self._held.get(pace.key, 0.0) - now, self._next.get(pace.key, 0.0) - now)

    def hold(self, key: str, seconds: float) -> None:
        until = self._clock() + min(max(seconds, 0.0), MAX_HOLD)
        self._held[key] = max(self._held.get(key, 0.0), until)


PACER = Pacer()


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds from a Retry-After header (delta-seconds; an HTTP date or garbage -> default)."""
    try:
        return min(max(float(value), 0.0), MAX_HOLD) if value is not None else default
    except ValueError:
        return default
