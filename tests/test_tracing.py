"""OpenTelemetry tracing through the Temporal SDK's TracingInterceptor: off by default, on
with OTEL_EXPORTER_OTLP_ENDPOINT. Spans go over OTLP/HTTP to a local collector stand-in that
decodes what it receives; a booking through the API yields linked client and worker spans."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.deps import Deps
from core.settings import Settings
from core.telemetry import flush_tracing
from core.temporal import connect
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import FAST, at
from tests.support.live import eventually, free_port, running_worker, serve


class Collector:
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.paths: list[str] = []
        self.lock = threading.Lock()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    got = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            with got.lock:
                got.paths.append(self.path)
                for rs in req.resource_spans:
                    for a in rs.resource.attributes:
                        if a.key == "service.name":
                            got.services.add(a.value.string_value)
                    for ss in rs.scope_spans:
                        got.spans.extend(ss.spans)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


async def test_tracing_is_off_by_default(settings: Settings) -> None:
    assert settings.otel_exporter_otlp_endpoint == ""
    client = await connect(settings)
    assert not client.config()["interceptors"]


async def test_booking_is_traced_across_api_and_worker(
    collector: tuple[Collector, str], settings: Settings, deps: Deps, api: Api
) -> None:
    got, endpoint = collector
    tq = f"traced-{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(
        update={"otel_exporter_otlp_endpoint": endpoint, "temporal_task_queue": tq, "api_port": free_port()}
    )
    client = await connect(s, service="worker")
    assert [type(i).__name__ for i in client.config()["interceptors"]] == ["TracingInterceptor"]
    from api.main import create_app

    admin = api.headers(Role.admin)
    async with (
        running_worker(client, deps, tq),
        serve(create_app(s), s.api_port) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        clinic = (
            await http.post(
                "/v1/clinics",
                headers=admin,
                json={"name": "Traced", "address": "Kyiv", "phone": "+380441234567", "timezone": "Europe/Kyiv"}
                | {"policy": FAST},
            )
        ).json()
        doctor = (
            await http.post(
                "/v1/doctors", headers=admin, json={"clinic_id": clinic["id"], "full_name": "Dr T", "specialty": "x"}
            )
        ).json()
        patient = (
            await http.post(
                "/v1/patients",
                headers=admin,
                json={"full_name": "Traced Patient", "phone": "+380671112233", "preferred_channel": "sms"}
                | {"clinic_id": clinic["id"]},
            )
        ).json()
        r = await http.post(
            "/v1/appointments",
            headers=api.headers(Role.front_desk),
            json={
                "patient_id": patient["id"],
                "clinic_id": clinic["id"],
                "doctor_id": doctor["id"],
                "starts_at": at(7200),
                "duration_minutes": 30,
                "service": "Check-up",
            },
        )
        assert r.status_code == 201, r.text

        async def spans() -> set[str]:
            flush_tracing()
            with got.lock:
                names = {sp.name for sp in got.spans}
            assert "StartWorkflow:AppointmentJourney" in names, names
            assert "RunWorkflow:AppointmentJourney" in names, names
            assert any(n.startswith("RunActivity:") for n in names), names
            return names

        await eventually(spans, timeout=60, interval=0.5)
    with got.lock:
        assert set(got.paths) == {"/v1/traces"}
        assert got.services and all(x.startswith("patient-journeys-") for x in got.services)
        by_name = {sp.name: sp for sp in got.spans}
        # One trace from the API's start to the worker's run.
        assert (
            by_name["RunWorkflow:AppointmentJourney"].trace_id == by_name["StartWorkflow:AppointmentJourney"].trace_id
        )
        # Span attributes are ids and types only: nothing personal travels in traces.
        for sp in got.spans:
            for a in sp.attributes:
                text = str(a.value)
                assert "Traced Patient" not in text and "380671112233" not in text, (sp.name, a.key)
