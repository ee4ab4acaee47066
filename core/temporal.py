"""One way to connect to Temporal, shared by API, worker, CLI and tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from core import sandbox_code
from core import search_attributes as sa
from core.codec import data_converter
from core.sandbox_contexts import JourneySandbox
from core.settings import PROJECT_ROOT, Settings
from core.telemetry import client_interceptors

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment

# Dev server flags: long polls renewed every 10 s (default 60 s), so the task queue's poller
# last-access time shows a dead worker within seconds (/health, HEALTH_POLLER_WINDOW).
DEV_SERVER_ARGS = ["--dynamic-config-value", 'matching.longPollExpirationInterval="10s"']

# The Temporal CLI (dev server + Web UI), built from Go modules by scripts/bootstrap.sh.
TEMPORAL_BIN = PROJECT_ROOT / ".tools" / "bin" / "temporal"


def dev_server_command(port: int, db_file: Path, *extra: str) -> list[str]:
    """`temporal server start-dev` on loopback, headless, its history in `db_file`, with our
    search attributes and DEV_SERVER_ARGS: the benches' and the chaos test's server, run as a
    process of their own so they can kill it and measure it (`make run` passes the same
    DEV_SERVER_ARGS and search attributes)."""
    return [
        str(TEMPORAL_BIN),
        *("server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)),
        *("--db-filename", str(db_file), "--log-level", "error"),
        *DEV_SERVER_ARGS,
        *sa.cli_args(),
        *extra,
    ]


async def start_dev_server(port: int | None = None) -> WorkflowEnvironment:
    """The same dev server in memory, started and stopped by the SDK (`await env.shutdown()`):
    the tests' shared server and the in-process benches'. `port`: a fixed one (default: free)."""
    from temporalio.testing import WorkflowEnvironment  # the SDK's test harness: tests and benches only

    return await WorkflowEnvironment.start_local(
        port=port,
        dev_server_existing_path=str(TEMPORAL_BIN),
        search_attributes=sa.ALL,
        dev_server_log_level="error",
        dev_server_extra_args=DEV_SERVER_ARGS,
    )


async def connect(settings: Settings, *, runtime: Runtime | None = None, service: str = "journeys") -> Client:
    """`runtime`: the worker passes one exporting Prometheus metrics. Tracing interceptors are
    added when OTEL_EXPORTER_OTLP_ENDPOINT is set (spans named after `service`)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.encryption_keys()),
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key or None,
        interceptors=client_interceptors(settings, f"patient-journeys-{service}"),
        runtime=runtime,
    )


def exit_without_teardown(code: int = 0) -> NoReturn:
    """End a process that used a Temporal client, once its work is done.

    The client's native (Rust) threads can outlive the event loop and abort CPython's
    finalisation ("Fatal Python error: PyGILState_Release", temporalio/sdk-python#300), which
    turned a successful short command into exit 134 now and then. Nothing is left to clean up
    at this point, so flush what was written and leave without interpreter teardown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def workflow_runner(sandbox: bool = False) -> WorkflowRunner:
    """The runner every worker and replayer runs the journeys in (WORKFLOW_SANDBOX).

    Unsandboxed by default. The sandbox re-imports a journey's module for every workflow instance
    it builds (a new journey, and every journey rebuilt from its history after the sticky cache
    evicted it), and that re-import (mostly `@workflow.defn` re-inspecting the fresh class) was
    half of a rebuild's CPU and a fifth of a cached journey's memory (`python -m
    bench.cache_cost`). In a burst larger than the cache nearly every due journey is rebuilt, so
    that half set the burst's drain. What the sandbox catches at run time, a clock, randomness or
    I/O in workflow code, and module state shared between journeys, is checked before the code
    runs instead: tests/test_layering.py over every module the journeys import, and the saved
    histories replay under both runners (tests/support/replay.py).

    `sandbox=True`: Temporal's sandbox. The `contracts` package (pure dataclasses and names)
    passes through whole: its classes are the host's, so the payload converter can resolve their
    type hints however a workflow module imported them. `workflows.planner` (the appointment
    journey's pure planning functions) passes through too. The modules the sandbox does import
    afresh for each instance share one compiled copy of their code per process
    (core/sandbox_code.py), and the payload contexts the SDK asks for around each activation are
    read without a trip into the sandbox (core/sandbox_contexts.py)."""
    if not sandbox:
        return UnsandboxedWorkflowRunner()
    sandbox_code.install()
    restrictions = SandboxRestrictions.default.with_passthrough_modules(
        "contracts", "core.search_attributes", "workflows.planner"
    )
    return JourneySandbox(restrictions=restrictions)
