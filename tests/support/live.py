"""Helpers to run real processes' insides in the test loop: a uvicorn server on a free
loopback port, and a worker on its own task queue."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from temporalio.client import Client
from temporalio.worker import Worker

from core.deps import Deps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1:port inside this event loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_worker(client: Client, deps: Deps, task_queue: str | None = None, **kw: Any) -> AsyncIterator[Worker]:
    from worker import build_import_worker, build_worker

    tq = task_queue or f"tq-{uuid.uuid4().hex[:8]}"
    worker = build_worker(client, deps, tq, **kw)
    async with worker, build_import_worker(client, deps, tq):
        yield worker


async def eventually(fn: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Retry `fn` (an async assertion) until it passes or `timeout` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await fn()
        except AssertionError:
            if loop.time() > deadline:
                raise
        await asyncio.sleep(interval)
