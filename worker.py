"""The worker process: runs every journey's workflows and activities on the journeys' task
queue, and the MIS imports (workflow + batches) on their own queue beside it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities import build_activities
from activities.imports import ImportActivities
from core import gc_policy, metrics
from core.db import make_engine, session_factory
from core.deps import Deps
from core.imports import import_queue
from core.logging import configure_logging, get_logger
from core.settings import Settings, get_settings
from core.telemetry import JourneyMetrics, flush_tracing, free_loopback_port, prometheus_runtime
from core.temporal import connect, exit_without_teardown, workflow_runner
from workflows.mis_import import MisImport
from workflows.registry import WORKFLOWS

log = get_logger("worker")


def build_worker(client: Client, deps: Deps, task_queue: str | None = None) -> Worker:
    s = deps.settings
    return Worker(
        client,
        task_queue=task_queue or s.temporal_task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(s.workflow_sandbox),
        activities=build_activities(deps),
        # Activities are async; the executor only serves sync ones, if any are added (its
        # threads start on demand; the SDK wants room for as many as run at once).
        activity_executor=ThreadPoolExecutor(max_workers=s.worker_max_concurrent_activities),
        max_concurrent_activities=s.worker_max_concurrent_activities,
        max_concurrent_local_activities=s.worker_max_concurrent_local_activities,
        # Journeys in flight stay built in memory; an evicted one is replayed from history.
        max_cached_workflows=s.worker_max_cached_workflows,
        interceptors=[JourneyMetrics()],
    )


def build_import_worker(client: Client, deps: Deps, task_queue: str | None = None) -> Worker:
    """The MIS imports' worker (core.imports.import_queue): its own slots, so an import's
    batches start while the journeys it started queue their notices on the main queue. The
    main worker keeps MisImport and its activities too, for imports started before."""
    s = deps.settings
    acts = ImportActivities(deps)
    return Worker(
        client,
        task_queue=import_queue(task_queue or s.temporal_task_queue),
        workflows=[MisImport],
        workflow_runner=workflow_runner(s.workflow_sandbox),
        activities=[acts.prepare_import, acts.apply_import_batch, acts.finish_import],
        max_concurrent_activities=s.worker_max_concurrent_activities,
        interceptors=[JourneyMetrics()],
    )


def build_workers(client: Client, deps: Deps) -> list[Worker]:
    """The workers this process runs (WORKER_QUEUES): the journeys' and/or the imports'."""
    which = deps.settings.worker_queues
    out = []
    if which in ("all", "journeys"):
        out.append(build_worker(client, deps))
    if which in ("all", "imports"):
        out.append(build_import_worker(client, deps))
    return out


def start_metrics(settings: Settings) -> tuple[object | None, Runtime | None]:
    """The worker's metrics port (ours + the Temporal SDK's, which exports on a loopback port
    behind it). Returns (http server, SDK runtime); (None, None) when WORKER_METRICS_PORT=0.
    A port already taken is logged and the worker runs on without metrics."""
    if not settings.worker_metrics_port:
        return None, None
    sdk_address = f"127.0.0.1:{free_loopback_port()}"
    try:
        server = metrics.start_worker_server(
            settings.worker_metrics_host, settings.worker_metrics_port, f"http://{sdk_address}/metrics"
        )
    except OSError as e:
        log.error(
            "worker metrics port not available; running without metrics",
            host=settings.worker_metrics_host,
            port=settings.worker_metrics_port,
            error=type(e).__name__,
        )
        return None, None
    log.info("worker metrics serving", host=settings.worker_metrics_host, port=settings.worker_metrics_port)
    return server, prometheus_runtime(sdk_address)


def make_deps(settings: Settings) -> Deps:
    engine = make_engine(settings.database_url)
    return Deps(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        http=httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)),
    )


async def run(settings: Settings) -> None:
    server, runtime = start_metrics(settings)
    client = None
    delay = 0.5
    while client is None:
        try:
            client = await connect(settings, runtime=runtime, service="worker")
        except Exception as e:  # noqa: BLE001
            log.warning("temporal not reachable yet", address=settings.temporal_address, error=type(e).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
    deps = make_deps(settings)
    workers = build_workers(client, deps)
    collector = gc_policy.tune(settings.worker_gc_threshold)  # once built, before the first poll
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        task_queues=[w.task_queue for w in workers],
        workflows=[w.__name__ for w in WORKFLOWS],
        **collector,
    )
    async with contextlib.AsyncExitStack() as running:
        for w in workers:
            await running.enter_async_context(w)
        await stop.wait()
        log.info("worker stopping: finishing in-flight tasks")
    await deps.http.aclose()
    await deps.engine.dispose()
    flush_tracing()
    if server is not None:
        server.shutdown()  # type: ignore[attr-defined]


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(run(settings))
    exit_without_teardown(0)  # stopped cleanly; see core.temporal for why not a plain return


if __name__ == "__main__":
    main()
