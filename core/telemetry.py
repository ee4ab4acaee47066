"""Temporal-side telemetry: the worker's SDK runtime with a Prometheus exporter, the journey
metrics interceptor, and OpenTelemetry tracing (off unless OTEL_EXPORTER_OTLP_ENDPOINT is set).

Nothing here reads patient data: spans carry workflow types and opaque workflow ids; journey
metrics carry the journey kind and a stage-like outcome code (core.metrics.slug).
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from core.metrics import JOURNEYS_ENDED, JOURNEYS_STARTED, slug
from core.settings import Settings

# ------------------------------------------------------------------------------ journey metrics
_KINDS = {
    "AppointmentJourney": "appointment",
    "TreatmentPlanJourney": "treatment_plan",
    "InvoiceApproval": "invoice",
    "MonthlyExpenseReport": "monthly_report",
}


def journey_kind(workflow_type: str) -> str:
    """AppointmentJourney -> appointment; a new journey type gets its snake_case name."""
    if workflow_type in _KINDS:
        return _KINDS[workflow_type]
    return slug(re.sub(r"(?<!^)(?=[A-Z])", "_", workflow_type).lower())


def journey_outcome(result: object) -> str:
    """The stage/state a journey ended in (finished, no_show, cancelled, completed, ...)."""
    for attr in ("stage", "state", "outcome"):
        value = getattr(result, attr, None)
        if value is not None:
            return slug(value)
    return "completed"


class JourneyMetrics(Interceptor):
    """Counts journeys started and ended, by kind (and outcome), from inside the workflow
    through the SDK's metric meter: not emitted while replaying, so a journey rebuilt from
    history after a restart or a cache eviction is never counted twice. A continue-as-new
    run is the same journey: neither a start nor an end."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _JourneyMetricsInbound


class _JourneyMetricsInbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        meter = workflow.metric_meter()
        kind = journey_kind(info.workflow_type)
        ended = meter.create_counter(JOURNEYS_ENDED, "Journeys ended, by kind and outcome.")
        if info.continued_run_id is None:
            meter.create_counter(JOURNEYS_STARTED, "Journeys started, by kind.").add(1, {"kind": kind})
        try:
            result = await self.next.execute_workflow(input)
        except workflow.ContinueAsNewError:
            raise
        except asyncio.CancelledError:
            ended.add(1, {"kind": kind, "outcome": "cancelled"})
            raise
        except FailureError:  # fails the workflow (other errors only fail and retry the task)
            ended.add(1, {"kind": kind, "outcome": "failed"})
            raise
        ended.add(1, {"kind": kind, "outcome": journey_outcome(result)})
        return result


# ------------------------------------------------------------------------------ SDK runtime
def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prometheus_runtime(bind_address: str) -> Runtime:
    """An SDK runtime exporting its metrics (and our workflow-side counters) in Prometheus
    format on bind_address. Counters end in _total, durations are in seconds."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind_address, counters_total_suffix=True, durations_as_seconds=True)
        )
    )


# ------------------------------------------------------------------------------ tracing
_tracing_lock = threading.Lock()
_tracing_service: str | None = None


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def setup_tracing(settings: Settings, service: str) -> bool:
    """Install a global TracerProvider exporting spans over OTLP/HTTP to
    OTEL_EXPORTER_OTLP_ENDPOINT (`<endpoint>/v1/traces`). Once per process; no-op when unset."""
    global _tracing_service
    if not tracing_enabled(settings):
        return False
    with _tracing_lock:
        if _tracing_service is not None:
            return True
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name or service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
        _tracing_service = service
        return True


def flush_tracing(timeout_millis: int = 5000) -> None:
    if _tracing_service is None:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(timeout_millis)


def client_interceptors(settings: Settings, service: str) -> list[Any]:
    """The SDK's TracingInterceptor when tracing is on: spans for starts, signals, queries and
    updates (client), and for workflows and activities (worker), linked across processes."""
    if not setup_tracing(settings, service):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
