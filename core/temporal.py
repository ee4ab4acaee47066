"""One way to connect to Temporal, shared by API, worker, CLI and tests."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from core import sandbox_code
from core.codec import data_converter
from core.sandbox_contexts import JourneySandbox
from core.settings import Settings
from core.telemetry import client_interceptors

# Dev server flags: long polls renewed every 10 s (default 60 s), so the task queue's poller
# last-access time shows a dead worker within seconds (/health, HEALTH_POLLER_WINDOW).
DEV_SERVER_ARGS = ["--dynamic-config-value", 'matching.longPollExpirationInterval="10s"']


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
