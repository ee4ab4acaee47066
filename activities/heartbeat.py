"""Heartbeats for the journeys' activities: a worker that dies mid-activity is noticed by
Temporal within the activity's heartbeat timeout (seconds), not its start-to-close (20-30 s),
and the activity (idempotent) is retried on a live worker. Until then the journey's loop
waits on it (a row write is awaited before the next timer is planned), so this bounds how
long a dead worker can hold a journey (issue 16)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity

HEARTBEAT_EVERY = 1.0  # seconds; the journeys' heartbeat timeout is a few of these

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat every HEARTBEAT_EVERY while the body runs (however long it takes). The first
    beat comes after one interval: the usual sub-second activity costs no extra call."""
    if not activity.in_activity() or activity.info().is_local:
        yield  # (a local activity runs inside its workflow task: nothing to heartbeat)
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def heartbeats(fn: F) -> F:
    """An async activity (method) that heartbeats while it runs; put it under @activity.defn."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        async with heartbeating():
            return await fn(*args, **kwargs)

    run.__heartbeats__ = True  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]
