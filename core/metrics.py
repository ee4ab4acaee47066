"""Prometheus metrics: the one place their names and labels are defined.

Every label value is drawn from a closed, code-defined set: route templates (never a raw
path), HTTP methods and status codes, channels, message and task kinds, journey kinds and
outcomes, provider names. `slug()` guards the values that travel through data (a message
kind, a task kind, a journey outcome): anything that is not a short lowercase code becomes
"other", so an id, a name, a phone number or free text can never become a label.

Processes:
  API     GET /metrics: HTTP, webhook signature failures, tasks closed by staff, inbound
          tasks, and the operator queue (open tasks and the oldest one's age, read at scrape).
  worker  WORKER_METRICS_PORT: sends, tasks opened/cancelled by journeys, appointment stages
          entered, journeys started/ended (emitted through the Temporal SDK's replay-safe
          metric meter by `worker_interceptors.JourneyMetrics`) and the SDK's own metrics.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
OTHER = "other"


def slug(value: object) -> str:
    """A label value that can only be a short lowercase code ("other" otherwise)."""
    v = getattr(value, "value", value)  # enums
    return v if isinstance(v, str) and _SLUG.match(v) else OTHER


# ------------------------------------------------------------------------------ HTTP (API)
HTTP_REQUESTS = Counter(
    "journeys_http_requests",
    "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "journeys_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response started), by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    m = method if method in METHODS else OTHER.upper()
    HTTP_REQUESTS.labels(m, route, str(status)).inc()
    HTTP_LATENCY.labels(m, route).observe(seconds)


# ------------------------------------------------------------------------------ messages
MESSAGES_SENT = Counter(
    "journeys_messages_sent",
    "Messages and voice calls a provider accepted, by channel and message kind.",
    ["channel", "kind"],
)
MESSAGES_FAILED = Counter(
    "journeys_messages_failed",
    "Send attempts that did not go out, by channel, message kind and reason: refused "
    "(provider 4xx, next channel tried), unavailable (5xx/429/network, retried later), "
    "undeliverable (every channel refused or none usable).",
    ["channel", "kind", "reason"],
)
FAIL_REASONS = frozenset({"refused", "unavailable", "undeliverable"})


def message_sent(channel: object, kind: str) -> None:
    MESSAGES_SENT.labels(slug(channel), slug(kind)).inc()


def message_failed(channel: object, kind: str, reason: str) -> None:
    assert reason in FAIL_REASONS, reason
    MESSAGES_FAILED.labels(slug(channel) if channel else "none", slug(kind), reason).inc()


# ------------------------------------------------------------------------------ webhooks
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "journeys_webhook_signature_failures",
    "Provider webhooks refused for a missing or wrong signature / secret, by provider.",
    ["provider"],
)
PROVIDERS = frozenset({"whatsapp", "telegram", "twilio"})


def webhook_signature_failed(provider: str) -> None:
    WEBHOOK_SIGNATURE_FAILURES.labels(provider if provider in PROVIDERS else OTHER).inc()


# ------------------------------------------------------------------------------ operator tasks
TASKS_OPENED = Counter("journeys_operator_tasks_opened", "Operator tasks raised, by kind.", ["kind"])
TASKS_CLOSED = Counter(
    "journeys_operator_tasks_closed",
    "Operator tasks closed, by kind and how: completed (by staff) or cancelled (no longer needed).",
    ["kind", "how"],
)


def task_opened(kind: str) -> None:
    TASKS_OPENED.labels(slug(kind)).inc()


def task_closed(kind: str, how: str) -> None:
    TASKS_CLOSED.labels(slug(kind), "completed" if how == "completed" else "cancelled").inc()


class TaskQueueCollector(Collector):
    """Open operator tasks and the oldest one's age, by kind. The numbers are read from the
    database by the /metrics handler (async) just before it renders; this only reports them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[str, int, datetime | None]] = []

    def update(self, rows: Iterable[tuple[object, int, datetime | None]]) -> None:
        with self._lock:
            self._rows = [(slug(k), n, oldest) for k, n, oldest in rows]

    def collect(self) -> Iterator[Metric]:
        open_ = GaugeMetricFamily(
            "journeys_operator_tasks_open", "Operator tasks not yet done, by kind.", labels=["kind"]
        )
        age = GaugeMetricFamily(
            "journeys_operator_task_oldest_age_seconds",
            "Age of the oldest open operator task, by kind.",
            labels=["kind"],
        )
        now = datetime.now(UTC)
        with self._lock:
            rows = list(self._rows)
        for kind, n, oldest in rows:
            open_.add_metric([kind], n)
            if oldest is not None:
                if oldest.tzinfo is None:
                    oldest = oldest.replace(tzinfo=UTC)
                age.add_metric([kind], max(0.0, (now - oldest).total_seconds()))
        yield open_
        yield age

    def describe(self) -> Iterator[Metric]:
        return iter(())


TASK_QUEUE = TaskQueueCollector()
REGISTRY.register(TASK_QUEUE)

# ------------------------------------------------------------------------------ journeys
APPOINTMENT_STAGES = Counter(
    "journeys_appointment_stage_entered",
    "Appointments entering a stage (confirmed, needs_clarification, no_show, ...), counted once "
    "per change when the journey mirrors itself into the database.",
    ["stage"],
)


def appointment_stage_entered(stage: object) -> None:
    APPOINTMENT_STAGES.labels(slug(stage)).inc()


# Emitted from workflow code through the SDK's metric meter (replay-safe), so they appear on
# the worker's port only (see worker_interceptors.JourneyMetrics).
JOURNEYS_STARTED = "journeys_workflows_started"
JOURNEYS_ENDED = "journeys_workflows_ended"


# ------------------------------------------------------------------------------ exposition
def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST


class SdkMetricsCollector(Collector):
    """The Temporal SDK's own exporter (Rust, on a loopback port) re-exposed on the worker's
    metrics port, so ops scrape one port per worker."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url
        self.timeout = timeout

    def collect(self) -> Iterator[Metric]:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as r:  # noqa: S310 (loopback)
                text = r.read().decode()
        except OSError:
            return
        yield from text_string_to_metric_families(text)

    def describe(self) -> Iterator[Metric]:
        return iter(())


def start_worker_server(host: str, port: int, sdk_url: str | None) -> Any:
    """Serve the default registry (+ the SDK's metrics) on host:port; returns the server."""
    from prometheus_client import start_http_server

    if sdk_url:
        REGISTRY.register(SdkMetricsCollector(sdk_url))
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server
