"""Prometheus metrics (issue 14): the API's GET /metrics and the worker's metrics port, scraped
after a real journey (worker as its own process, as in production): names, labels, and that no
patient data - name, phone, ids, reply text - can appear in any label."""

from __future__ import annotations

import random
import re
import string
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import PROJECT_ROOT, Settings
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import FAST, at
from tests.support.live import eventually, free_port, serve
from tests.test_worker_killed import _worker_env

NAME = "Олена Метрикова"
PHONE = f"+38067{uuid.uuid4().int % 10_000_000:07d}"

# Our metrics: name -> the exact label names it carries (the SDK adds its own on the worker).
API_METRICS = {
    "journeys_http_requests": {"method", "route", "status"},
    "journeys_http_request_duration_seconds": {"method", "route"},
    "journeys_webhook_signature_failures": {"provider"},
    "journeys_operator_tasks_opened": {"kind"},
    "journeys_operator_tasks_closed": {"kind", "how"},
    "journeys_operator_tasks_open": {"kind"},
    "journeys_operator_task_oldest_age_seconds": {"kind"},
}
WORKER_METRICS = {
    "journeys_messages_sent": {"channel", "kind"},
    "journeys_messages_failed": {"channel", "kind", "reason"},
    "journeys_operator_tasks_opened": {"kind"},
    "journeys_appointment_stage_entered": {"stage"},
}
SDK_LABELS = {"namespace", "task_queue", "workflow_type", "service_name", "activity_type"}
JOURNEY_METRICS = {"journeys_workflows_started_total": {"kind"}, "journeys_workflows_ended_total": {"kind", "outcome"}}
# A label value is a code: a slug, an HTTP method/status, a route template or an SDK name.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./{}<>:+-]*$")


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.name, dict(s.labels), s.value) for s in fam.samples]
    return out


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    return sum(
        v
        for samples in fams.values()
        for n, lab, v in samples
        if n == sample and all(lab.get(k) == x for k, x in labels.items())
    )


def assert_no_patient_data(text: str, secrets: list[str]) -> None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            for k, v in s.labels.items():
                assert SAFE_VALUE.match(v), f"{s.name}{{{k}={v!r}}}: not a code"
                assert not re.search(r"\d{7,}", v), f"{s.name}{{{k}={v!r}}}: a number that could be a phone"
                for secret in secrets:
                    assert secret.lower() not in v.lower(), f"{s.name}{{{k}={v!r}}} carries patient data"


def _tail(log: Path) -> str:
    return log.read_text()[-2000:] if log.exists() else ""


@pytest.fixture(scope="module")
async def stack(settings: Settings, users: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict]:
    """An API (in this loop) and a worker process on their own task queue, the worker with
    its metrics port on."""
    # Letters only: a hex suffix can be all digits, which the label check below rightly flags.
    tq = "metrics-" + "".join(random.choices(string.ascii_lowercase, k=10))
    mport = free_port()
    s = settings.model_copy(update={"temporal_task_queue": tq, "api_port": free_port()})
    env = {**_worker_env(s, tq), "WORKER_METRICS_PORT": str(mport), "WORKER_METRICS_HOST": "127.0.0.1"}
    log: Path = tmp_path_factory.mktemp("metrics") / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    from api.main import create_app

    try:
        async with serve(create_app(s), s.api_port) as url, httpx.AsyncClient(timeout=30) as http:

            async def worker_up() -> None:
                try:
                    r = await http.get(f"http://127.0.0.1:{mport}/metrics")
                except httpx.TransportError as e:
                    raise AssertionError(f"worker metrics port not open yet: {_tail(log)}") from e
                assert r.status_code == 200

            await eventually(worker_up, timeout=120, interval=0.5)
            yield {"api": url, "worker": f"http://127.0.0.1:{mport}/metrics", "http": http}
    finally:
        worker.terminate()
        worker.wait(timeout=60)


async def test_metrics_after_a_journey(stack: dict, api: Api) -> None:
    http: httpx.AsyncClient = stack["http"]
    base = stack["api"]
    admin = api.headers(Role.admin)
    r = await http.post(
        f"{base}/v1/clinics",
        headers=admin,
        json={"name": "Smile Metrics", "address": "Kyiv", "phone": "+380441234567", "timezone": "Europe/Kyiv"}
        | {"policy": {**FAST, "reminder_lead": 3600, "confirm_deadline": 60}},
    )
    assert r.status_code == 201, r.text
    clinic = r.json()
    r = await http.post(
        f"{base}/v1/doctors", headers=admin, json={"clinic_id": clinic["id"], "full_name": "Dr M", "specialty": "x"}
    )
    doctor = r.json()
    r = await http.post(
        f"{base}/v1/patients",
        headers=admin,
        json={"full_name": NAME, "phone": PHONE, "preferred_channel": "sms", "clinic_id": clinic["id"]},
    )
    assert r.status_code == 201, r.text
    patient = r.json()
    r = await http.post(
        f"{base}/v1/appointments",
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
    appt = r.json()
    op = api.headers(Role.operator)

    async def notice_sent() -> None:
        m = await http.get(f"{base}/v1/sandbox/messages", headers=op, params={"patient_id": patient["id"]})
        assert any(x["direction"] == "out" and x["status"] == "sent" for x in m.json()), m.text

    await eventually(notice_sent, timeout=90)
    # The patient answers: yes (confirmed), then something the robot cannot read (a task).
    for text in ("так", f"{NAME} тут, мій номер {PHONE}"):
        r = await http.post(f"{base}/v1/sandbox/reply", headers=op, json={"patient_id": patient["id"], "text": text})
        assert r.status_code == 200, r.text

    async def confirmed() -> None:
        r = await http.get(f"{base}/v1/appointments/{appt['id']}", headers=op)
        assert r.json()["stage"] == "confirmed", r.text

    await eventually(confirmed, timeout=60)

    async def a_task() -> list[dict]:
        r = await http.get(f"{base}/v1/tasks", headers=op, params={"state": "open", "clinic_id": clinic["id"]})
        assert r.status_code == 200 and r.json(), r.text
        return r.json()

    task = (await eventually(a_task, timeout=60))[0]
    r = await http.post(f"{base}/v1/tasks/{task['id']}/complete", headers=op)
    assert r.status_code == 200, r.text
    r = await http.post(f"{base}/v1/appointments/{appt['id']}/cancel", headers=op, json={"reason": "metrics"})
    assert r.status_code == 200, r.text
    # Patient data in paths and query strings must not become a label either.
    await http.get(f"{base}/v1/patients/{patient['id']}", headers=op, params={"q": NAME})
    await http.get(f"{base}/nowhere/{PHONE}/{NAME}")
    r = await http.post(f"{base}/v1/webhooks/whatsapp", content=b"{}")  # no signature
    assert r.status_code == 401
    r = await http.post(f"{base}/v1/webhooks/telegram", headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
    assert r.status_code == 403

    secrets = [NAME, PHONE, PHONE.lstrip("+"), patient["id"], appt["id"], clinic["id"], doctor["id"], task["id"]]
    secrets += [t for t in NAME.split()]

    # ---- the API
    r = await http.get(f"{base}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert_no_patient_data(text, secrets)
    fams = parse(text)
    for name, labels in API_METRICS.items():
        assert name in fams, f"{name} missing from the API's /metrics"
        for sample, lab, _ in fams[name]:
            keys = set(lab) - {"le"} if sample.endswith("_bucket") else set(lab)
            assert keys == labels, (sample, lab)
    assert value(fams, "journeys_http_requests_total", route="/v1/appointments", method="POST", status="201") >= 1
    assert value(fams, "journeys_http_requests_total", route="/v1/patients/{patient_id}", method="GET") >= 1
    assert value(fams, "journeys_http_requests_total", route="<unmatched>", status="404") >= 1
    assert value(fams, "journeys_http_request_duration_seconds_count", route="/v1/appointments", method="POST") >= 1
    assert value(fams, "journeys_webhook_signature_failures_total", provider="whatsapp") >= 1
    assert value(fams, "journeys_webhook_signature_failures_total", provider="telegram") >= 1
    assert value(fams, "journeys_operator_tasks_closed_total", kind=task["kind"], how="completed") >= 1
    assert "journeys_operator_tasks_open" in fams and "process_resident_memory_bytes" in fams

    # ---- the worker (ours + the Temporal SDK's, one port)
    async def worker_counts() -> tuple[str, dict[str, Any]]:
        w = await http.get(stack["worker"])
        assert w.status_code == 200
        f = parse(w.text)
        assert value(f, "journeys_workflows_started_total", kind="appointment") >= 1
        assert value(f, "journeys_workflows_ended_total", kind="appointment", outcome="cancelled") >= 1
        return w.text, f

    wtext, wf = await eventually(worker_counts, timeout=60)
    assert_no_patient_data(wtext, secrets)
    for name, labels in WORKER_METRICS.items():
        if name == "journeys_messages_failed":
            continue  # nothing failed in this run; the name is checked below with the API's registry
        assert name in wf, f"{name} missing from the worker's metrics"
        assert all(set(lab) == labels for _, lab, _ in wf[name]), wf[name]
    for name, labels in JOURNEY_METRICS.items():
        for _, lab, _ in wf[name.removesuffix("_total")]:
            assert labels <= set(lab) <= labels | SDK_LABELS, lab
    assert value(wf, "journeys_messages_sent_total", channel="sms", kind="booking_notice") >= 1
    assert value(wf, "journeys_appointment_stage_entered_total", stage="confirmed") >= 1
    assert any(n.startswith("temporal_") for n in wf), "the SDK's own metrics are missing"
    assert "temporal_workflow_task_schedule_to_start_latency_seconds" in wf or any(
        "schedule_to_start" in n for n in wf
    ), sorted(wf)


async def test_metric_labels_are_codes_whatever_the_data() -> None:
    """The guard on values that travel through data: a kind or outcome that is not a short
    code becomes "other" (so a future caller passing free text leaks nothing)."""
    from core import metrics

    assert metrics.slug("booking_notice") == "booking_notice"
    for bad in (NAME, PHONE, "Olena Petrenko", "x" * 60, "a b", "", None, 42, "Confirmed"):
        assert metrics.slug(bad) == "other"
    metrics.message_failed(None, NAME, "refused")
    metrics.task_opened(PHONE)
    text = metrics.render()[0].decode()
    assert_no_patient_data(text, [NAME, PHONE])
    assert 'journeys_messages_failed_total{channel="none",kind="other",reason="refused"}' in text


async def test_metrics_token_guards_the_endpoint(settings: Settings) -> None:
    from api.main import create_app

    s = settings.model_copy(update={"metrics_token": "scrape-secret", "api_port": free_port()})
    async with serve(create_app(s), s.api_port) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        r = await http.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert r.status_code == 200 and "journeys_http_requests_total" in r.text
        assert r.headers["x-request-id"]
