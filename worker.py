"""The worker process: runs every journey's workflows and activities on one task queue."""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from activities.deps import Deps
from core.db import make_engine, session_factory
from core.logging import configure_logging, get_logger
from core.settings import Settings, get_settings
from core.temporal import connect, exit_without_teardown
from workflows import WORKFLOWS

log = get_logger("worker")


def build_worker(client: Client, deps: Deps, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or deps.settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(deps),
        # Activities are async; the executor only serves sync ones, if any are added.
        activity_executor=ThreadPoolExecutor(max_workers=8),
        max_concurrent_activities=8,
    )


def make_deps(settings: Settings) -> Deps:
    engine = make_engine(settings.database_url)
    return Deps(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        http=httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)),
    )


async def run(settings: Settings) -> None:
    client = None
    delay = 0.5
    while client is None:
        try:
            client = await connect(settings)
        except Exception as e:  # noqa: BLE001
            log.warning("temporal not reachable yet", address=settings.temporal_address, error=type(e).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
    deps = make_deps(settings)
    worker = build_worker(client, deps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", task_queue=settings.temporal_task_queue, workflows=[w.__name__ for w in WORKFLOWS])
    async with worker:
        await stop.wait()
        log.info("worker stopping: finishing in-flight tasks")
    await deps.http.aclose()
    await deps.engine.dispose()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(run(settings))
    exit_without_teardown(0)  # stopped cleanly; see core.temporal for why not a plain return


if __name__ == "__main__":
    main()
